"""The replica's per-step sampling fast path, on the real batching manager.

A replica (transformers' continuous-batching manager, no solo copy, so every request is
batched) serves an initialised tiny-chat checkpoint on a real port; requests are sent
at once from threads so they share steps.

Proves: the fast path installs on the pinned transformers; an all-greedy batch skips
the processors and answers exactly what `generate(do_sample=False)` answers; a batch
with one sampled row runs the full path (its top-p filter skipped only while every
row is at 1.0) and its greedy rows still answer as `generate` does; a nucleus that
keeps one token is still applied (a sampled row at temperature 1 then answers the
argmax). Cannot prove: the speed (benchmarks/bench_serving.py measures it).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmops.local.serving import sampling_fast_path
from llmops.local.serving.replica import Engine, create_app
from llmops.local.train import initialised_checkpoint
from tests.support.project import REPO
from tests.support.server import served

pytestmark = [pytest.mark.engine, pytest.mark.timeout(600)]

PROMPTS = ["Once upon a time", "The robot said", "Two plus two is", "Hello there"]
TOKENS = 8


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sampling") / "tiny-chat"
    initialised_checkpoint(REPO, folder)
    return folder


@pytest.fixture(scope="module")
def url(checkpoint: Path) -> Iterator[str]:
    engine = Engine(str(checkpoint), device="cpu", dtype="float32", concurrency=8, max_context=256, solo=False)
    try:
        with served(create_app(engine)) as url:
            yield url
    finally:
        engine.close()  # its batching thread is not a daemon


@pytest.fixture(scope="module")
def greedy(checkpoint: Path) -> dict[str, str]:
    """Each prompt's answer from generate(do_sample=False), the reference a greedy request must match."""
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model: Any = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    model.train(False)
    out = {}
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            generated = model.generate(ids, max_new_tokens=TOKENS, do_sample=False)
        out[prompt] = tokenizer.decode(generated[0, ids.shape[1] :], skip_special_tokens=True)
    return out


def at_once(url: str, bodies: list[dict[str, Any]]) -> list[str]:
    """Send every body at the same time (so they share batching steps); their answers in order."""
    answers: list[str] = [""] * len(bodies)
    start = threading.Barrier(len(bodies))

    def send(i: int) -> None:
        with httpx.Client(timeout=120) as http:
            start.wait()
            r = http.post(f"{url}/v1/completions", json={"model": "tiny-chat", "max_tokens": TOKENS, **bodies[i]})
            assert r.status_code == 200, r.text
            answers[i] = r.json()["choices"][0]["text"]

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_the_fast_path_installs_on_the_pinned_transformers() -> None:
    # A transformers release that moved the wrapped methods makes this fail: re-check the wrapping then.
    assert sampling_fast_path.install() is None


def test_an_all_greedy_batch_skips_the_processors_and_answers_as_generate(url: str, greedy: dict[str, str]) -> None:
    before = dict(sampling_fast_path.counts)
    answers = at_once(url, [{"prompt": p, "temperature": 0} for p in PROMPTS])
    assert answers == [greedy[p] for p in PROMPTS]
    assert sampling_fast_path.counts["greedy_steps"] >= before["greedy_steps"] + TOKENS
    assert sampling_fast_path.counts["sampled_steps"] == before["sampled_steps"]


def test_a_sampled_row_runs_the_full_path_and_greedy_rows_stay_greedy(url: str, greedy: dict[str, str]) -> None:
    before = dict(sampling_fast_path.counts)
    bodies = [{"prompt": p, "temperature": 0} for p in PROMPTS[:3]]
    answers = at_once(url, [*bodies, {"prompt": PROMPTS[3], "temperature": 1.0, "max_tokens": 4 * TOKENS}])
    assert answers[:3] == [greedy[p] for p in PROMPTS[:3]]
    assert sampling_fast_path.counts["sampled_steps"] > before["sampled_steps"]
    assert sampling_fast_path.counts["top_p_skipped"] > before["top_p_skipped"]  # every row at top_p 1.0


def test_a_nucleus_of_one_token_is_still_applied(url: str, greedy: dict[str, str]) -> None:
    # At temperature 1 an untrained model's draw over 1,024 tokens would differ from the argmax
    # within a few tokens; a top_p that keeps one token leaves only the argmax.
    bodies = [{"prompt": p, "temperature": 1.0, "top_p": 1e-6} for p in PROMPTS]
    assert at_once(url, bodies) == [greedy[p] for p in PROMPTS]
