"""The requests the post-deploy smoke check sends: each serving variant, pinned, with the model's examples.

Each target reaches one variant through the route its users take:
- local: the model's front (`endpoints.<model>.url` in the stack outputs) with the request
  header `x-llmops-version: <version>`, which the front honours from loopback only;
- SageMaker: `InvokeEndpoint` on the stack's endpoint with `TargetVariant` (the variant's
  name), the Messages API body the TGI and LMI containers both take;
- EKS: the model's URL from the stack outputs with the same header; what routes to the
  Service (the HTTPRoute) must send a request carrying it to that version's pods.

Every request is timed by this client (what a user waits for) and is an error when it
cannot be sent, answers other than 2xx, or answers without `choices`. The number sent is
bounded: `per_prompt` requests per example prompt, at most `MAX_REQUESTS` a variant.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from llmops.errors import UserError
from llmops.local.experiment_routing import PIN_HEADER
from llmops.naming import variant_name
from llmops.registry import Deployment

DEFAULT_PER_PROMPT = 2
MAX_PER_PROMPT = 10
MAX_REQUESTS = 40  # per variant: a smoke check, not a load test
MAX_TOKENS = 16  # enough to show generation works; latency is judged on these answers
FALLBACK_PROMPT = "Hello"  # a model without `examples:` is still sent something
CHAT_ROUTE = "/chat/completions"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    seconds: float
    error: str = ""


# (version, prompt) -> what one request to that version measured
Invoke = Callable[[str, str], Outcome]


@dataclass(frozen=True)
class Probe:
    """What the requests to one variant measured."""

    version: str
    where: str  # how the variant was reached, for a located message
    outcomes: tuple[Outcome, ...]

    @property
    def requests(self) -> int:
        return len(self.outcomes)

    @property
    def errors(self) -> int:
        return sum(not o.ok for o in self.outcomes)

    @property
    def unreachable(self) -> bool:
        return bool(self.outcomes) and all(not o.ok for o in self.outcomes)

    def first_error(self) -> str:
        return next((o.error for o in self.outcomes if not o.ok), "")


def prompts_for(dep: Deployment, per_prompt: int) -> list[str]:
    examples = dep.model.examples or [FALLBACK_PROMPT]
    return [p for p in examples for _ in range(per_prompt)][:MAX_REQUESTS]


def _answered(body: Any) -> str:
    """'' when the answer has choices, else why not."""
    if isinstance(body, dict) and body.get("choices"):
        return ""
    return f"no choices in the answer: {json.dumps(body)[:200]}"


def http_invoker(client: httpx.Client, url: str, model: str, max_tokens: int = MAX_TOKENS) -> Invoke:
    """Chat completions at an OpenAI-style `url` (with or without its /v1), pinned by header."""
    base = url.rstrip("/")
    route = f"{base}{CHAT_ROUTE}" if base.endswith("/v1") else f"{base}/v1{CHAT_ROUTE}"

    def invoke(version: str, prompt: str) -> Outcome:
        body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
        start = time.perf_counter()
        try:
            r = client.post(route, json=body, headers={PIN_HEADER: version})
            seconds = time.perf_counter() - start
            if r.status_code >= 300:
                return Outcome(False, seconds, f"HTTP {r.status_code}: {r.text[:300]}")
            error = _answered(r.json())
        except (httpx.HTTPError, ValueError) as exc:
            return Outcome(False, time.perf_counter() - start, f"{type(exc).__name__}: {exc}"[:300])
        answered_by = r.headers.get(PIN_HEADER)
        if not error and answered_by is not None and answered_by != version:
            error = f"answered by {answered_by}, not the pinned {version}"
        return Outcome(not error, seconds, error)

    return invoke


def sagemaker_invoker(client: Any, endpoint: str, max_tokens: int = MAX_TOKENS, component: str | None = None) -> Invoke:
    """`InvokeEndpoint` with `TargetVariant` on a boto3 "sagemaker-runtime" client; on a scale-to-zero
    endpoint with `InferenceComponentName` instead (its one component serves its one version)."""
    from botocore.exceptions import BotoCoreError, ClientError

    def invoke(version: str, prompt: str) -> Outcome:
        body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
        target = {"InferenceComponentName": component} if component else {"TargetVariant": variant_name(version)}
        start = time.perf_counter()
        try:
            response = client.invoke_endpoint(
                EndpointName=endpoint,
                ContentType="application/json",
                Accept="application/json",
                Body=json.dumps(body).encode(),
                **target,
            )
            error = _answered(json.loads(response["Body"].read()))
        except (BotoCoreError, ClientError, ValueError) as exc:
            return Outcome(False, time.perf_counter() - start, str(exc)[:300])
        return Outcome(not error, time.perf_counter() - start, error)

    return invoke


def probe(dep: Deployment, invoke: Invoke, where: Callable[[str], str], per_prompt: int) -> list[Probe]:
    """Send the requests to every variant with traffic (a staged weight-0 variant serves no user)."""
    prompts = prompts_for(dep, per_prompt)
    return [
        Probe(v.version, where(v.version), tuple(invoke(v.version, p) for p in prompts))
        for v in dep.variants
        if v.weight > 0
    ]


def stack_endpoints(root: Path, stack: str) -> dict[str, dict[str, Any]]:
    """The stack's `endpoints` output: each model's URL and endpoint name, as deployed."""
    from llmops.engine import run_pulumi

    result = run_pulumi(["stack", "output", "endpoints", "--json", "--stack", stack], root=root, capture=True)
    if result.returncode != 0:
        error = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        raise UserError(f"cannot read the endpoints of stack {stack}: {error}")
    return dict(json.loads(result.stdout or "{}"))


def invoker_for(
    dep: Deployment, endpoint: dict[str, Any], http: httpx.Client, sagemaker: Callable[[], Any]
) -> tuple[Invoke, Callable[[str], str]]:
    """How to reach `dep`'s variants from its stack output, and how to name where each was sent.
    `sagemaker` makes the boto3 "sagemaker-runtime" client, only for a SageMaker endpoint."""
    url, name = str(endpoint.get("url") or ""), str(endpoint.get("endpointName") or "")
    if url.startswith("https://runtime.sagemaker.") and name:
        component = endpoint.get("inferenceComponent")
        if component:
            invoke = sagemaker_invoker(sagemaker(), name, component=str(component))
            return invoke, lambda v: f"SageMaker {name} inference component {component}"
        return sagemaker_invoker(sagemaker(), name), lambda v: f"SageMaker {name} variant {variant_name(v)}"
    if not url:
        raise UserError(f"{dep.name}: the stack's endpoints output has no url for it: deploy it first")
    return http_invoker(http, url, dep.name), lambda v: f"{url} ({PIN_HEADER}: {v})"
