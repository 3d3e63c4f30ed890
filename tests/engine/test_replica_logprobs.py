"""Log probabilities from the real replica, and lm-eval scoring a model through the endpoint.

A replica (transformers' batching manager, real weights: an initialised tiny-chat
checkpoint) in process behind the official `openai` client, and on a real port for
lm-evaluation-harness' `local-completions` model.

Proves: scoring a prompt (`echo`, `max_tokens: 0`, `logprobs`) returns each token's log
probability as the model computes it in process; a greedy answer's tokens are its top
alternatives; chat `logprobs` cover exactly the answer's tokens; a token-id prompt
echoes its text. lm-eval's `local-completions` over the endpoint measures the held-out
suite as its in-process Hugging Face model does, so evaluations can target a served
model. Cannot prove: GPU numerics (CPU float32 here).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import torch
from fastapi.testclient import TestClient
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmops.evaluation.harness import local_model, run_suite
from llmops.evaluation.suites import load_suite
from llmops.local.serving.replica import Engine, create_app
from llmops.local.train import initialised_checkpoint
from tests.support.project import REPO
from tests.support.server import served

pytestmark = [pytest.mark.engine, pytest.mark.timeout(600)]

PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("logprobs") / "tiny-chat"
    initialised_checkpoint(REPO, folder)
    return folder


@pytest.fixture(scope="module")
def engine(checkpoint: Path) -> Iterator[Engine]:
    engine = Engine(str(checkpoint), device="cpu", dtype="float32", concurrency=4, max_context=256, solo=True)
    yield engine
    engine.close()  # its batching thread is not a daemon: left running, it keeps pytest from exiting


@pytest.fixture(scope="module")
def client(engine: Engine) -> Iterator[openai.OpenAI]:
    with TestClient(create_app(engine), base_url="http://replica") as http:
        yield openai.OpenAI(base_url="http://replica/v1", api_key="unused", http_client=http, max_retries=0)


def reference(checkpoint: Path, ids: list[int]) -> torch.Tensor:
    model: Any = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    model.train(False)
    with torch.inference_mode():
        return torch.log_softmax(model(torch.tensor([ids])).logits[0], dim=-1)


def test_a_scored_prompt_carries_the_models_own_log_probabilities(client: openai.OpenAI, checkpoint: Path) -> None:
    scored = client.completions.create(model="tiny-chat", prompt=PROMPT, max_tokens=0, echo=True, logprobs=2)
    choice = scored.choices[0]
    assert choice.text == PROMPT and scored.usage is not None and scored.usage.completion_tokens == 0
    ids = AutoTokenizer.from_pretrained(checkpoint)(PROMPT)["input_ids"]
    expected = reference(checkpoint, ids)
    logprobs = choice.logprobs
    assert logprobs is not None and logprobs.token_logprobs is not None and logprobs.top_logprobs is not None
    assert logprobs.token_logprobs[0] is None and len(logprobs.token_logprobs) == len(ids)
    for i in range(1, len(ids)):
        assert logprobs.token_logprobs[i] == pytest.approx(float(expected[i - 1, ids[i]]), abs=1e-4)
        assert max(logprobs.top_logprobs[i].values()) == pytest.approx(float(expected[i - 1].max()), abs=1e-4)
    # The same prompt as token ids echoes its text.
    by_ids = client.completions.create(model="tiny-chat", prompt=ids, max_tokens=0, echo=True, logprobs=0)
    assert (
        by_ids.choices[0].logprobs is not None and by_ids.choices[0].logprobs.token_logprobs == logprobs.token_logprobs
    )


def test_greedy_answers_report_their_tokens_as_the_most_likely(client: openai.OpenAI) -> None:
    answer = client.completions.create(
        model="tiny-chat", prompt=PROMPT, max_tokens=4, temperature=0, logprobs=1, seed=3
    )
    lp = answer.choices[0].logprobs
    assert lp is not None and lp.tokens is not None and lp.token_logprobs is not None and lp.top_logprobs is not None
    assert "".join(lp.tokens) == answer.choices[0].text and len(lp.tokens) == 4
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs, strict=True):
        assert top == {token: pytest.approx(logprob)}

    messages: Any = [{"role": "user", "content": "Hello"}]
    chat = client.chat.completions.create(
        model="tiny-chat", messages=messages, max_tokens=3, temperature=0, logprobs=True, top_logprobs=2
    )
    content = chat.choices[0].logprobs.content if chat.choices[0].logprobs else None
    assert content is not None and chat.usage is not None and len(content) == chat.usage.completion_tokens
    assert all(len(t.top_logprobs) == 2 and t.top_logprobs[0].logprob >= t.logprob - 1e-5 for t in content)


def test_lm_eval_measures_a_served_model_as_it_measures_one_in_process(engine: Engine, checkpoint: Path) -> None:
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    suite = load_suite(REPO / "models", "tiny-chat-heldout")
    with served(create_app(engine)) as url:
        endpoint = LocalCompletionsAPI(
            base_url=f"{url}/v1/completions",
            model="tiny-chat",
            tokenizer_backend="huggingface",
            tokenizer=str(checkpoint),
            tokenized_requests=True,
            max_length=256,
        )
        over_http = run_suite(suite, endpoint, model="tiny-chat", weights="endpoint")
    in_process = run_suite(suite, local_model(checkpoint), model="tiny-chat", weights="checkpoint")
    assert over_http.examples == in_process.examples > 0
    assert over_http.metrics["bits_per_byte"] == pytest.approx(in_process.metrics["bits_per_byte"], rel=1e-5)
