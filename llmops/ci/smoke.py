"""The smoke run of a review stack's endpoint: `/health`, `/metrics`, and one chat completion per example prompt."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

CHAT_ROUTE = "/v1/chat/completions"


@dataclass(frozen=True)
class Answer:
    prompt: str
    text: str | None  # None: the request failed (see error)
    latency_ms: float
    error: str = ""


@dataclass
class Smoke:
    url: str
    health: str = ""  # "ok", or what went wrong
    metrics: str = ""
    answers: list[Answer] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.health == "ok" and self.metrics == "ok" and all(a.text is not None for a in self.answers)


def _check(client: httpx.Client, url: str, expect: str) -> str:
    try:
        r = client.get(url)
    except httpx.HTTPError as exc:
        return f"unreachable: {exc}"
    if r.status_code != 200:
        return f"HTTP {r.status_code}"
    return "ok" if expect in r.text else f"unexpected body: {r.text[:80]!r}"


def ask(client: httpx.Client, url: str, model: str, prompt: str, max_tokens: int) -> Answer:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
    start = time.perf_counter()
    try:
        r = client.post(f"{url}{CHAT_ROUTE}", json=body)
        r.raise_for_status()
        text = str(r.json()["choices"][0]["message"]["content"])
    except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
        return Answer(prompt, None, (time.perf_counter() - start) * 1000, str(exc)[:200])
    return Answer(prompt, text, (time.perf_counter() - start) * 1000)


def smoke(url: str, model: str, prompts: list[str], *, max_tokens: int = 32, timeout: float = 60.0) -> Smoke:
    """Check one endpoint; every failure is recorded, none raised."""
    out = Smoke(url)
    with httpx.Client(timeout=timeout) as client:
        out.health = _check(client, f"{url}/health", '"ok"')
        out.answers = [ask(client, url, model, p, max_tokens) for p in prompts]
        out.metrics = _check(client, f"{url}/metrics", "# HELP")  # after the prompts, so their series exist
    return out
