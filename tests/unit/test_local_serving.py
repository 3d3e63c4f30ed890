"""The local serving front end (`llmops.local.serve`) in front of fake replicas, in process.

Proves: the OpenAI routes pass the replica's answer through (or relay its SSE
stream) under the serving name and report the answering version;
traffic splits by variant weight and never reaches a weight-0 variant; a replica
that refuses connections or fails with a 5xx is retried on another; /health is
503 once no replica is routable; a routing-table reload switches versions
atomically (and only from loopback); max_tokens is capped by the registry; and
every request lands in the metrics contract (requests, errors, latency, TTFT,
tokens, in-flight).

Cannot prove: anything about the real replica (`llmops.local.serving.replica`) or real
processes and ports — the fakes speak its response and stream formats as read
from its source; the engine tests (tests/engine/test_local_stack.py) cover the real thing.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.testclient import TestClient

from llmops.local.serve import (
    CHAT_ROUTE,
    COMPLETIONS_ROUTE,
    VERSION_HEADER,
    Router,
    RoutingTable,
    Upstream,
    VariantRoute,
    create_app,
    replica_argv,
)

pytestmark = pytest.mark.unit


def fake_replica(name: str, *, status: int = 200, healthy: bool = True) -> FastAPI:
    """A replica speaking the OpenAI response and SSE formats; each token is `<name>` so tests see who answered."""
    app = FastAPI()
    app.state.healthy = healthy
    app.state.requests = []

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"}, status_code=200 if app.state.healthy else 503)

    async def generate(request: Request, chat: bool) -> Any:
        body = await request.json()
        app.state.requests.append(body)
        if status != 200:
            return JSONResponse({"error": "boom"}, status_code=status)
        n = int(body["max_tokens"])
        usage = {"prompt_tokens": 3, "completion_tokens": n, "total_tokens": 3 + n}
        if not body.get("stream"):
            text = f"<{name}>" * n
            choice = {"index": 0, "finish_reason": "length"}
            choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
            kind = "chat.completion" if chat else "text_completion"
            return JSONResponse(
                {"id": "x", "object": kind, "model": "/some/dir@main", "choices": [choice], "usage": usage}
            )

        def event(**fields: Any) -> str:
            return f"data: {json.dumps({'id': 'x', 'model': '/some/dir@main', **fields})}\n\n"

        def stream() -> Iterator[str]:
            if chat:
                yield event(choices=[{"index": 0, "delta": {"role": "assistant"}}])
            for _ in range(n):
                piece = {"delta": {"content": f"<{name}>"}} if chat else {"text": f"<{name}>"}
                yield event(choices=[{"index": 0, **piece}])
            last = {"delta": {}} if chat else {"text": ""}
            yield event(choices=[{"index": 0, "finish_reason": "length", **last}], usage=usage)

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.post(CHAT_ROUTE)
    async def chat(request: Request) -> Any:
        return await generate(request, chat=True)

    @app.post(COMPLETIONS_ROUTE)
    async def completions(request: Request) -> Any:
        return await generate(request, chat=False)

    return app


class Replicas(httpx.AsyncBaseTransport):
    """Routes `http://host:port/...` to the fake replica registered for that address;
    an address with no replica refuses the connection, as a stopped process does."""

    def __init__(self, apps: dict[str, FastAPI]):
        self.apps = apps

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        address = f"{request.url.host}:{request.url.port}"
        app = self.apps.get(address)
        if app is None:
            raise httpx.ConnectError("connection refused", request=request)
        return await httpx.ASGITransport(app=app).handle_async_request(request)


def table(*variants: tuple[str, int, list[str]], max_new_tokens: int = 4) -> RoutingTable:
    return RoutingTable(
        model="tiny-chat",
        max_new_tokens=max_new_tokens,
        variants=[
            VariantRoute(version=v, weight=w, upstreams=[Upstream(address=a) for a in addresses])
            for v, w, addresses in variants
        ],
    )


def client_for(app: FastAPI) -> TestClient:
    return TestClient(app, client=("127.0.0.1", 50000))


def sample(app: FastAPI, name: str, labels: dict[str, str]) -> float:
    value = app.state.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


CHAT = {"model": "tiny-chat", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 3}


def test_chat_completion_is_assembled_and_counted() -> None:
    fakes = {"127.0.0.1:9001": fake_replica("a")}
    app = create_app(table=table(("v1", 100, ["127.0.0.1:9001"])), transport=Replicas(fakes), health_interval=60)
    with client_for(app) as client:
        r = client.post(CHAT_ROUTE, json=CHAT)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == "tiny-chat"
        assert body["choices"][0]["message"] == {"role": "assistant", "content": "<a><a><a>"}
        assert body["choices"][0]["finish_reason"] == "length"
        assert body["usage"]["completion_tokens"] == 3
        assert r.headers[VERSION_HEADER] == "v1"
        assert body["system_fingerprint"] == "tiny-chat:v1"
        # Passed through whole, without the serving name the replica does not know.
        sent = fakes["127.0.0.1:9001"].state.requests[0]
        assert not sent.get("stream") and "model" not in sent

        labels = {"model": "tiny-chat", "version": "v1", "route": CHAT_ROUTE}
        assert sample(app, "llmops_requests_total", {**labels, "code": "200"}) == 1
        assert sample(app, "llmops_request_duration_seconds_count", labels) == 1
        assert sample(app, "llmops_request_errors_total", labels) == 0
        assert sample(app, "llmops_generated_tokens_total", {"model": "tiny-chat", "version": "v1"}) == 3
        # TTFT is observed on streamed requests only.
        assert sample(app, "llmops_time_to_first_token_seconds_count", {"model": "tiny-chat", "version": "v1"}) == 0
        assert sample(app, "llmops_requests_in_flight", {"model": "tiny-chat"}) == 0
        exposition = client.get("/metrics").text
        assert 'llmops_requests_total{code="200",model="tiny-chat",route="/v1/chat/completions",version="v1"} 1.0' in (
            exposition
        )


def test_a_served_versions_series_exist_at_zero_before_its_first_request() -> None:
    """rate() cannot see a series' birth: a burst between two scrapes must still read as traffic."""
    app = create_app(
        table=table(("v1", 90, ["127.0.0.1:9001"]), ("v2", 10, ["127.0.0.1:9002"])),
        transport=Replicas({"127.0.0.1:9001": fake_replica("a"), "127.0.0.1:9002": fake_replica("b")}),
        health_interval=60,
    )
    registry = app.state.metrics.registry
    with client_for(app) as client:
        assert client.get("/metrics").status_code == 200
        for version in ("v1", "v2"):
            labels = {"model": "tiny-chat", "version": version}
            assert registry.get_sample_value("llmops_time_to_first_token_seconds_count", labels) == 0
            assert registry.get_sample_value("llmops_generated_tokens_total", labels) == 0
            for route in (CHAT_ROUTE, COMPLETIONS_ROUTE):
                at = {**labels, "route": route}
                assert registry.get_sample_value("llmops_request_duration_seconds_count", at) == 0, at
                assert registry.get_sample_value("llmops_requests_total", {**at, "code": "200"}) == 0, at
                assert registry.get_sample_value("llmops_request_errors_total", at) == 0, at


def test_completions_stream_is_relayed_under_the_serving_name() -> None:
    fakes = {"127.0.0.1:9001": fake_replica("a")}
    app = create_app(table=table(("v1", 100, ["127.0.0.1:9001"])), transport=Replicas(fakes), health_interval=60)
    with client_for(app) as client:
        r = client.post(COMPLETIONS_ROUTE, json={"prompt": "Once", "max_tokens": 2, "stream": True})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
        assert lines[-1] == "[DONE]"
        assert fakes["127.0.0.1:9001"].state.requests[0]["stream"] is True
        events = [json.loads(line) for line in lines[:-1]]
        assert all(e["model"] == "tiny-chat" for e in events)
        assert "".join(e["choices"][0]["text"] for e in events) == "<a><a>"
        assert events[-1]["usage"]["completion_tokens"] == 2
        labels = {"model": "tiny-chat", "version": "v1"}
        assert sample(app, "llmops_time_to_first_token_seconds_count", labels) == 1
        assert sample(app, "llmops_generated_tokens_total", labels) == 2


def test_max_tokens_defaults_to_and_is_capped_by_the_registry() -> None:
    fakes = {"127.0.0.1:9001": fake_replica("a")}
    app = create_app(
        table=table(("v1", 100, ["127.0.0.1:9001"]), max_new_tokens=5), transport=Replicas(fakes), health_interval=60
    )
    with client_for(app) as client:
        assert client.post(CHAT_ROUTE, json={**CHAT, "max_tokens": 1000}).json()["usage"]["completion_tokens"] == 5
        assert client.post(CHAT_ROUTE, json={"messages": CHAT["messages"]}).json()["usage"]["completion_tokens"] == 5
        assert client.post(CHAT_ROUTE, json={**CHAT, "max_tokens": 2}).json()["usage"]["completion_tokens"] == 2


def test_unknown_model_and_bad_body_are_client_errors() -> None:
    app = create_app(table=table(("v1", 100, ["127.0.0.1:9001"])), transport=Replicas({}), health_interval=60)
    with client_for(app) as client:
        r = client.post(CHAT_ROUTE, json={**CHAT, "model": "gpt-4"})
        assert r.status_code == 404 and "tiny-chat" in r.json()["error"]["message"]
        assert client.post(CHAT_ROUTE, content=b"not json").status_code == 400
        assert (
            sample(app, "llmops_request_errors_total", {"model": "tiny-chat", "version": "", "route": CHAT_ROUTE}) == 0
        )


def test_traffic_splits_by_weight_and_skips_weight_zero() -> None:
    router = Router(
        table(("v1", 80, ["a:1"]), ("v2", 20, ["b:1"]), ("v3", 0, ["c:1"])),
        rng=random.Random(7),
    )
    router.swap(router.table)
    picks = [router.pick() for _ in range(4000)]
    versions = [p[0].version for p in picks if p is not None]
    assert len(versions) == 4000
    assert "v3" not in versions
    share = versions.count("v2") / len(versions)
    assert 0.17 < share < 0.23, share


def test_requests_spread_over_both_variants_end_to_end() -> None:
    fakes = {"127.0.0.1:9001": fake_replica("blue"), "127.0.0.1:9002": fake_replica("green")}
    app = create_app(
        table=table(("v1", 50, ["127.0.0.1:9001"]), ("v2", 50, ["127.0.0.1:9002"])),
        transport=Replicas(fakes),
        rng=random.Random(1),
        health_interval=60,
    )
    with client_for(app) as client:
        answers = [client.post(CHAT_ROUTE, json=CHAT) for _ in range(40)]
    by_version = {v: [a for a in answers if a.headers[VERSION_HEADER] == v] for v in ("v1", "v2")}
    assert 10 <= len(by_version["v1"]) <= 30
    assert all("<blue>" in a.json()["choices"][0]["message"]["content"] for a in by_version["v1"])
    assert all("<green>" in a.json()["choices"][0]["message"]["content"] for a in by_version["v2"])


def test_a_refused_or_failing_replica_is_retried_on_another() -> None:
    # 9001 has no process (refuses connections), 9002 answers 500, 9003 works.
    fakes = {"127.0.0.1:9002": fake_replica("bad", status=500), "127.0.0.1:9003": fake_replica("good")}
    app = create_app(
        table=table(("v1", 100, ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"])),
        transport=Replicas(fakes),
        health_interval=60,
    )
    with client_for(app) as client:
        for _ in range(6):
            r = client.post(CHAT_ROUTE, json=CHAT)
            assert r.status_code == 200, r.text
            assert "<good>" in r.json()["choices"][0]["message"]["content"]
    assert app.state.router.healthy["127.0.0.1:9001"] is False
    labels = {"model": "tiny-chat", "version": "v1", "route": CHAT_ROUTE}
    assert sample(app, "llmops_request_errors_total", labels) == 0


def test_no_routable_replica_is_a_503_and_an_error() -> None:
    fakes = {"127.0.0.1:9001": fake_replica("bad", status=500)}
    app = create_app(table=table(("v1", 100, ["127.0.0.1:9001"])), transport=Replicas(fakes), health_interval=60)
    with client_for(app) as client:
        r = client.post(CHAT_ROUTE, json=CHAT)
        assert r.status_code == 503
        assert "500" in r.json()["error"]["message"]
    assert sample(app, "llmops_request_errors_total", {"model": "tiny-chat", "version": "", "route": CHAT_ROUTE}) == 1
    assert sample(app, "llmops_requests_in_flight", {"model": "tiny-chat"}) == 0


def test_health_follows_the_replicas() -> None:
    replica = fake_replica("a")
    app = create_app(
        table=table(("v1", 100, ["127.0.0.1:9001"])),
        transport=Replicas({"127.0.0.1:9001": replica}),
        health_interval=60,
    )
    with client_for(app) as client:
        assert client.get("/health").status_code == 200
        replica.state.healthy = False
        client.portal.call(app.state.check_replicas)
        assert client.get("/health").status_code == 503
        assert client.post(CHAT_ROUTE, json=CHAT).status_code == 503
        replica.state.healthy = True
        client.portal.call(app.state.check_replicas)
        assert client.get("/health").status_code == 200
        # CPU replicas report no GPU memory, but are reported.
        assert sample(app, "llmops_gpu_memory_utilization", {"model": "tiny-chat", "replica": "127.0.0.1:9001"}) == 0


class SlowHealth(Replicas):
    """Replicas whose /health probe times out while `slow` is set; their answers still come."""

    slow = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.slow and request.url.path == "/health":
            raise httpx.ReadTimeout("probe timed out", request=request)
        return await super().handle_async_request(request)


def test_one_slow_health_probe_keeps_a_replica_routable_a_second_in_a_row_does_not() -> None:
    """A replica busy on a starved CPU misses a probe deadline yet answers: one miss must not 503 everyone."""
    transport = SlowHealth({"127.0.0.1:9001": fake_replica("a")})
    app = create_app(table=table(("v1", 100, ["127.0.0.1:9001"])), transport=transport, health_interval=60)
    with client_for(app) as client:
        transport.slow = True
        client.portal.call(app.state.check_replicas)
        assert client.post(CHAT_ROUTE, json=CHAT).status_code == 200
        client.portal.call(app.state.check_replicas)
        assert client.post(CHAT_ROUTE, json=CHAT).status_code == 503
        assert client.get("/health").status_code == 503
        transport.slow = False
        client.portal.call(app.state.check_replicas)
        assert client.post(CHAT_ROUTE, json=CHAT).status_code == 200
        # A slow probe never makes a replica routable that a refusal took out of rotation.
        transport.apps.clear()
        client.portal.call(app.state.check_replicas)
        transport.slow = True
        transport.apps["127.0.0.1:9001"] = fake_replica("a")
        client.portal.call(app.state.check_replicas)
        assert client.get("/health").status_code == 503


def test_route_weights_report_the_split_as_routed(tmp_path: Path) -> None:
    """What an experiment's window starts from: a canary counts from when it is routable."""
    routes = tmp_path / "routes.json"
    table(("v1", 80, ["127.0.0.1:9001"]), ("v2", 20, ["127.0.0.1:9002"])).write(routes)
    canary = fake_replica("b", healthy=False)
    app = create_app(
        routes, transport=Replicas({"127.0.0.1:9001": fake_replica("a"), "127.0.0.1:9002": canary}), health_interval=60
    )

    def weights(client: TestClient) -> dict[str, float]:
        text = client.get("/metrics").text
        return {
            line.split('version="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("llmops_route_weight{")
        }

    with client_for(app) as client:
        client.portal.call(app.state.check_replicas)
        assert weights(client) == {"v1": 80, "v2": 0}
        canary.state.healthy = True
        client.portal.call(app.state.check_replicas)
        assert weights(client) == {"v1": 80, "v2": 20}
        table(("v2", 100, ["127.0.0.1:9002"])).write(routes)
        client.post("/admin/reload")
        assert weights(client) == {"v2": 100}  # a version switched away from is no longer reported


def test_reload_switches_versions_atomically_and_only_from_loopback(tmp_path: Path) -> None:
    routes = tmp_path / "routes.json"
    table(("v1", 100, ["127.0.0.1:9001"])).write(routes)
    fakes = {"127.0.0.1:9001": fake_replica("blue"), "127.0.0.1:9002": fake_replica("green")}
    app = create_app(routes, transport=Replicas(fakes), health_interval=60)
    with client_for(app) as client:
        assert client.post(CHAT_ROUTE, json=CHAT).headers[VERSION_HEADER] == "v1"
        table(("v2", 100, ["127.0.0.1:9002"])).write(routes)
        assert client.post(CHAT_ROUTE, json=CHAT).headers[VERSION_HEADER] == "v1", "no reload yet"
        remote = TestClient(app, client=("10.1.2.3", 40000))  # no `with`: the app's lifespan is already running
        assert remote.post("/admin/reload").status_code == 403
        r = client.post("/admin/reload")
        assert r.status_code == 200 and RoutingTable.model_validate(r.json()).variants[0].version == "v2"
        assert {client.post(CHAT_ROUTE, json=CHAT).headers[VERSION_HEADER] for _ in range(5)} == {"v2"}
        models = client.get("/v1/models").json()
        assert models["data"][0]["id"] == "tiny-chat"
        assert models["data"][0]["versions"] == [{"version": "v2", "weight": 100}]
        routes.write_text("{broken")
        assert client.post("/admin/reload").status_code == 400
        assert client.post(CHAT_ROUTE, json=CHAT).headers[VERSION_HEADER] == "v2", "a bad table changes nothing"


def test_replica_command_pins_the_model_and_sizes_the_batch() -> None:
    argv = replica_argv("/py", "/models/x", port=18401, concurrency=16, max_context=512)
    assert argv[:4] == ["/py", "-m", "llmops.local.serving.replica", "/models/x"]
    flags = dict(zip(argv[4::2], argv[5::2], strict=False))
    assert flags == {
        "--port": "18401",
        "--device": "cpu",
        "--dtype": "float32",
        "--concurrency": "16",
        "--max-context": "512",
    }
