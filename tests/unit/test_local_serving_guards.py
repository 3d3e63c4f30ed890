"""What keeps one request from taking the local endpoint down: validation, admission, supervision.

Proves, in process against fake replicas (and real child processes for the
supervisor): every malformed body is a 4xx naming the field and never reaches a
replica (hypothesis over arbitrary JSON bodies); an OpenAI parameter nothing here
implements is refused by name, and so is one the replica honours only in part (a
seed on a sampled request, logprobs on a stream), while log probabilities, prompt
scoring and token-id prompts are accepted; a prompt over the context is a 400 with both
numbers, counted with the tokenizer the table names; an oversized body is a 413;
beyond `concurrency` in flight plus the queue a request is shed at once with 429
and Retry-After; a client that disconnects cancels its replica request; the
supervisor restarts a replica after N failed probes in a row (not before), with
backoff, records the new pid, and counts the restart in /metrics; the autoscaler
steps up only on sustained load and down only after its stabilisation window, and
not at all while the machine lacks the memory a replica is sized for.

Cannot prove: the real replica's behaviour (tests/engine/test_local_serving_resilience.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops.local.serving.autoscale import DOWN, HOLD, UP, Autoscaler, room_for
from llmops.local.serving.front import CHAT_ROUTE, COMPLETIONS_ROUTE, create_app
from llmops.local.serving.prompts import Prompter
from llmops.local.serving.routing import Autoscale, Launch, RoutingTable, Upstream, VariantRoute
from llmops.local.serving.supervisor import Live, Supervisor, read_pid_file, spawn
from llmops.local.serving.validation import ChatRequest, CompletionRequest, RequestError, parse

pytestmark = pytest.mark.unit

CHAT = {"messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 3}


class WordTokenizer:
    """Counts words: enough to check the front's arithmetic without a model artifact."""

    def apply_chat_template(self, messages: list[dict[str, str]], **_: Any) -> dict[str, list[int]]:
        words = sum(len(m["content"].split()) for m in messages)
        return {"input_ids": list(range(words + 2))}  # + the template's role markers

    def __call__(self, text: str, **_: Any) -> dict[str, list[int]]:
        return {"input_ids": list(range(len(text.split())))}


def replica(gate: asyncio.Event | None = None) -> FastAPI:
    app = FastAPI()
    app.state.requests = []
    app.state.cancelled = 0

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.post(CHAT_ROUTE)
    @app.post(COMPLETIONS_ROUTE)
    async def generate(request: Request) -> JSONResponse:
        body = await request.json()
        app.state.requests.append(body)
        if gate is not None:
            try:
                await gate.wait()
            except asyncio.CancelledError:
                app.state.cancelled += 1
                raise
        n = int(body["max_tokens"])
        return JSONResponse(
            {
                "id": "x",
                "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1},
            }
        )

    return app


class Transport(httpx.AsyncBaseTransport):
    def __init__(self, app: FastAPI):
        self.inner = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)


def front(app: FastAPI, **table: Any) -> FastAPI:
    routes = RoutingTable(
        model="tiny-chat",
        max_new_tokens=8,
        max_context=32,
        variants=[
            VariantRoute(version="v1", weight=100, tokenizer="words", upstreams=[Upstream(address="127.0.0.1:9")])
        ],
        **table,
    )
    return create_app(
        table=routes, transport=Transport(app), health_interval=60, prompter=lambda _p: Prompter(WordTokenizer())
    )


def client_for(app: FastAPI) -> TestClient:
    return TestClient(app, client=("127.0.0.1", 50000))


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "user"}]}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({**CHAT, "max_tokens": -5}, "max_tokens"),
        ({**CHAT, "max_tokens": 0}, "max_tokens"),
        ({**CHAT, "max_tokens": 2.5}, "max_tokens"),
        ({**CHAT, "temperature": "hot"}, "temperature"),
        ({**CHAT, "temperature": 3}, "temperature"),
        ({**CHAT, "top_p": 0}, "top_p"),
        ({**CHAT, "n": 0}, "n"),
        ({**CHAT, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({**CHAT, "stop": [""]}, "stop"),
        ({**CHAT, "stream": "yes"}, "stream"),
        ({**CHAT, "logprobs": True, "stream": True}, "logprobs"),
        ({**CHAT, "top_logprobs": 2}, "top_logprobs"),
        ({**CHAT, "top_logprobs": 21, "logprobs": True}, "top_logprobs"),
        ({**CHAT, "seed": 7}, "seed"),  # sampled (the model's default temperature): one batch, one generator
        ({**CHAT, "seed": 7, "temperature": 0.7}, "seed"),
        ({**CHAT, "presence_penalty": 0.5}, "presence_penalty"),
        ({**CHAT, "frequency_penalty": 0.5}, "frequency_penalty"),
        ({**CHAT, "tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({**CHAT, "response_format": {"type": "json_object"}}, "response_format"),
        ({**CHAT, "model": 3}, "model"),
    ],
)
def test_a_bad_chat_body_is_a_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestError) as failure:
        parse(json.dumps(body).encode(), ChatRequest)
    assert failure.value.status == 400
    assert failure.value.param == param, failure.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_tokens": 3}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": ["ok", ""]}, "prompt"),
        ({"prompt": 42}, "prompt"),
        ({"prompt": "x", "logprobs": 6}, "logprobs"),
        ({"prompt": "x", "logprobs": 1, "stream": True}, "logprobs"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),  # 0 only scores an echoed prompt
        ({"prompt": [[]]}, "prompt"),
        ({"prompt": [1, "a"]}, "prompt"),
        ({"prompt": "x", "echo": True, "stream": True}, "echo"),
        ({"prompt": "x", "best_of": 3}, "best_of"),
        ({"prompt": "x", "suffix": "y"}, "suffix"),
    ],
)
def test_a_bad_completion_body_is_a_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestError) as failure:
        parse(json.dumps(body).encode(), CompletionRequest)
    assert failure.value.param == param, failure.value.message


def test_what_the_replica_honours_is_accepted() -> None:
    """Log probabilities on both routes, prompt scoring, token-id prompts, and a seed where it changes nothing."""
    chat = parse(json.dumps({**CHAT, "logprobs": True, "top_logprobs": 3}).encode(), ChatRequest)
    assert chat.wants_logprobs() == 3
    greedy = parse(json.dumps({**CHAT, "seed": 7, "temperature": 0}).encode(), ChatRequest)
    assert greedy.seed == 7
    # What lm-eval's local-completions sends for a loglikelihood request.
    lm_eval = {"prompt": [[1, 2, 3]], "max_tokens": 1, "logprobs": 1, "echo": True, "temperature": 0, "seed": 1234}
    request = parse(json.dumps(lm_eval).encode(), CompletionRequest)
    assert isinstance(request, CompletionRequest) and request.prompts() == [[1, 2, 3]] and request.wants_logprobs() == 1
    scoring = parse(
        json.dumps({"prompt": "x", "max_tokens": 0, "echo": True, "logprobs": 0}).encode(), CompletionRequest
    )
    assert isinstance(scoring, CompletionRequest) and scoring.scoring() and scoring.wants_logprobs() == 0
    assert parse(json.dumps({"prompt": [5, 6]}).encode(), CompletionRequest).prompts() == [[5, 6]]  # type: ignore[union-attr]


def test_unknown_fields_and_metadata_are_tolerated() -> None:
    body = {**CHAT, "user": "u1", "metadata": {"a": "b"}, "store": False, "x_custom": 1, "stop": "Ask", "n": 2}
    request = parse(json.dumps(body).encode(), ChatRequest)
    assert isinstance(request, ChatRequest)
    assert request.stops() == ["Ask"] and request.n == 2


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
fields = st.sampled_from(
    ["messages", "prompt", "max_tokens", "temperature", "top_p", "n", "stop", "stream", "logprobs", "echo", "model"]
)
bodies = st.dictionaries(fields | st.text(max_size=8), json_values, max_size=6) | json_values


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_no_body_fails_other_than_with_a_client_error(body: Any) -> None:
    for kind in (ChatRequest, CompletionRequest):
        try:
            parse(json.dumps(body).encode(), kind)
        except RequestError as exc:
            assert 400 <= exc.status < 500


def test_front_refuses_bad_input_before_any_replica_sees_it() -> None:
    fake = replica()
    app = front(fake, max_body_bytes=4096)
    with client_for(app) as client:
        r = client.post(CHAT_ROUTE, json={**CHAT, "max_tokens": -5})
        assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"
        assert client.post(CHAT_ROUTE, content=b"{not json").status_code == 400
        r = client.post(CHAT_ROUTE, json={**CHAT, "model": "gpt-4"})
        assert r.status_code == 404 and r.json()["error"]["param"] == "model"
        huge = {"messages": [{"role": "user", "content": "word " * 5000}]}
        r = client.post(CHAT_ROUTE, json=huge)
        assert r.status_code == 413, r.text
        assert fake.state.requests == [], "nothing invalid reaches a replica"
        assert client.post(CHAT_ROUTE, json=CHAT).status_code == 200, "a normal request is served afterwards"
    labels = {"model": "tiny-chat", "version": "", "route": CHAT_ROUTE}
    assert app.state.metrics.registry.get_sample_value("llmops_requests_total", {**labels, "code": "400"}) == 2
    assert app.state.metrics.registry.get_sample_value("llmops_request_errors_total", labels) is None


def test_a_prompt_over_the_context_is_a_400_with_both_numbers() -> None:
    fake = replica()
    app = front(fake)
    with client_for(app) as client:
        long = {"messages": [{"role": "user", "content": "word " * 40}], "max_tokens": 4}
        r = client.post(CHAT_ROUTE, json=long)
        assert r.status_code == 400
        message = r.json()["error"]["message"]
        assert "32" in message and "42 tokens" in message and r.json()["error"]["param"] == "messages"
        # Fits alone, not with the tokens asked for: the error names max_tokens.
        r = client.post(COMPLETIONS_ROUTE, json={"prompt": "word " * 28, "max_tokens": 8})
        assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens", r.text
        assert fake.state.requests == []
        # Within the context, max_tokens defaults to the registry's cap.
        assert client.post(COMPLETIONS_ROUTE, json={"prompt": "word " * 20}).status_code == 200
        assert fake.state.requests[-1]["max_tokens"] == 8


def test_beyond_concurrency_and_queue_requests_are_shed_at_once_with_retry_after() -> None:
    gate = asyncio.Event()
    fake = replica(gate)
    app = front(fake, concurrency=2, queue=1)

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://f") as c:
            held = [asyncio.create_task(c.post(CHAT_ROUTE, json=CHAT)) for _ in range(3)]
            while len(fake.state.requests) < 3:
                await asyncio.sleep(0.01)
            started = time.monotonic()
            shed = await c.post(CHAT_ROUTE, json=CHAT)
            assert time.monotonic() - started < 5, "shedding must not wait"
            gate.set()
            return [shed, *await asyncio.gather(*held)]

    shed, *served = asyncio.run(scenario())
    assert shed.status_code == 429, shed.text
    assert shed.headers["retry-after"] == "1"
    assert shed.json()["error"]["type"] == "rate_limit_error"
    assert [r.status_code for r in served] == [200, 200, 200]
    assert app.state.router.busy["127.0.0.1:9"] == 0


def test_a_client_that_goes_away_cancels_its_replica_request() -> None:
    gate = asyncio.Event()
    fake = replica(gate)
    app = front(fake)

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://f") as c:
            call = asyncio.create_task(c.post(CHAT_ROUTE, json=CHAT))
            while not fake.state.requests:
                await asyncio.sleep(0.01)
            call.cancel()  # the client disconnects
            with pytest.raises(asyncio.CancelledError):
                await call
            for _ in range(200):
                if fake.state.cancelled:
                    break
                await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert fake.state.cancelled == 1
    assert app.state.router.busy["127.0.0.1:9"] == 0


SLEEPER = "import time; time.sleep(600)"


def launch(tmp_path: Path) -> Launch:
    return Launch(
        argv=[sys.executable, "-c", SLEEPER],
        cwd=str(tmp_path),
        log=str(tmp_path / "replica.log"),
        pid_file=str(tmp_path / "replica.pid"),
    )


def test_supervisor_restarts_after_n_failures_in_a_row_with_backoff(tmp_path: Path) -> None:
    spec = launch(tmp_path)
    first = spawn(spec)
    os.kill(first.pid, signal.SIGSTOP)  # hung: only SIGKILL ends it
    now = [0.0]
    restarted: list[str] = []
    sup = Supervisor(failures=3, backoff=20, clock=lambda: now[0], on_restart=lambda u: restarted.append(u.address))
    upstream = Upstream(address="127.0.0.1:9", launch=spec)
    try:
        assert not sup.observe(upstream, False)
        assert not sup.observe(upstream, True), "a good probe resets the count"
        assert not sup.observe(upstream, False) and not sup.observe(upstream, False)
        assert sup.observe(upstream, False), "third failure in a row restarts"
        second = read_pid_file(Path(spec.pid_file))
        assert second is not None and second.pid != first.pid and second.running()
        assert not first.running(), "the hung process is killed"
        assert restarted == ["127.0.0.1:9"]
        # Still failing: the next restart waits for the backoff.
        for _ in range(5):
            assert not sup.observe(upstream, False)
        now[0] += 21
        assert sup.observe(upstream, False)
        third = read_pid_file(Path(spec.pid_file))
        assert third is not None and third.pid != second.pid
        # An unsupervised replica (no launch recipe) is never restarted.
        assert not any(sup.observe(Upstream(address="127.0.0.1:10"), False) for _ in range(5))
    finally:
        live = read_pid_file(Path(spec.pid_file))
        for p in (first, live):
            if isinstance(p, Live) and p.running():
                os.killpg(p.pid, signal.SIGKILL)


def test_restarts_are_counted_in_metrics(tmp_path: Path) -> None:
    spec = launch(tmp_path)
    spawn(spec)
    table = RoutingTable(
        model="tiny-chat",
        variants=[VariantRoute(version="v1", weight=100, upstreams=[Upstream(address="127.0.0.1:9", launch=spec)])],
    )
    down = FastAPI()

    @down.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "unhealthy"}, status_code=503)

    app = create_app(table=table, transport=Transport(down), health_interval=60, supervisor=Supervisor(failures=2))
    try:
        with client_for(app) as client:
            for _ in range(2):
                client.portal.call(app.state.check_replicas)
            text = client.get("/metrics").text
        assert 'llmops_replica_restarts_total{model="tiny-chat",replica="127.0.0.1:9"} 1.0' in text
    finally:
        live = read_pid_file(Path(spec.pid_file))
        if live is not None and live.running():
            os.killpg(live.pid, signal.SIGKILL)


def test_autoscaler_steps_up_on_sustained_load_and_down_after_the_stabilisation_window() -> None:
    scaler = Autoscaler(Autoscale(target_in_flight=8, up_after=5, down_after=30))
    # 2 replicas, 20 in flight (> 8 x 2): up only once the load has lasted 5 s.
    assert scaler.decide("v1", 20, 2, 1, 0, now=0) == HOLD
    assert scaler.decide("v1", 20, 2, 1, 0, now=4) == HOLD
    assert scaler.decide("v1", 10, 2, 1, 0, now=4.5) == HOLD, "a dip resets the clock"
    assert scaler.decide("v1", 20, 2, 1, 0, now=5) == HOLD
    assert scaler.decide("v1", 20, 2, 1, 0, now=10) == UP
    assert scaler.decide("v1", 40, 3, 0, 1, now=20) == HOLD, "no standby left: max_replicas reached"
    # 3 replicas, light load (one fewer would stay at half the target) for 30 s: down, then hold.
    assert scaler.decide("v1", 3, 3, 0, 1, now=100) == HOLD
    assert scaler.decide("v1", 3, 3, 0, 1, now=129) == HOLD
    assert scaler.decide("v1", 3, 3, 0, 1, now=130) == DOWN
    # Only started spares are stopped: the declared min_replicas stay.
    assert scaler.decide("v1", 0, 2, 1, 0, now=200) == HOLD
    assert scaler.decide("v1", 0, 2, 1, 0, now=300) == HOLD


def test_a_scale_up_the_machine_has_no_room_for_is_not_taken(tmp_path: Path) -> None:
    """Like a pod that stays Pending: sustained load, a standby left, but not the memory it is sized for."""
    assert room_for(None) is None and room_for(1e-6) is None
    assert "GiB of memory free" in str(room_for(1e9))
    marker = tmp_path / "started"
    launch = Launch(
        argv=[sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"],
        cwd=str(tmp_path),
        log=str(tmp_path / "spare.log"),
        pid_file=str(tmp_path / "spare.pid"),
    )
    variant = VariantRoute(
        version="v1",
        weight=100,
        tokenizer="words",
        upstreams=[Upstream(address="127.0.0.1:9")],
        spares=[Upstream(address="127.0.0.1:10", launch=launch)],
    )
    table = RoutingTable(
        model="tiny-chat",
        max_new_tokens=8,
        max_context=32,
        autoscale=Autoscale(target_in_flight=1, up_after=0.01, replica_memory_gib=1e9),
        variants=[variant],
    )
    app = create_app(
        table=table, transport=Transport(replica()), health_interval=60, prompter=lambda _p: Prompter(WordTokenizer())
    )
    with client_for(app) as client:
        app.state.router.busy["127.0.0.1:9"] = 5  # well above 1 in flight per replica
        for _ in range(3):
            client.portal.call(app.state.check_replicas)
            time.sleep(0.05)
        assert "127.0.0.1:10" not in app.state.router.active and not marker.exists()
        blocked = app.state.metrics.registry.get_sample_value(
            "llmops_autoscale_blocked_total", {"model": "tiny-chat", "version": "v1"}
        )
        assert blocked is not None and blocked >= 1
