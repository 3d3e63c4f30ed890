"""The front end's experiment features: sticky assignment, feedback, shadow traffic.

Proves: a user key always reaches the same variant; keys spread over variants in
proportion to their weights; when a canary's weight grows, its users stay and only
baseline users move; weight 0 never wins. Through the real front (fake replicas in
process): requests naming a `user` stick to one version; every answer carries a
response id that `POST /v1/feedback` rates exactly once, counted per version under
the metrics contract; bad or unknown ratings are located client errors; the store
forgets the oldest ids first. A shadow route receives copies of the sampled share of
requests, its answers never reach the client, and its series stay apart from the
live ones.
Cannot prove: the latency these add (benchmarks/bench_experiments.py measures it).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

import httpx
import pytest

from llmops.local.experiment_routing import ResponseLog, ShadowRoute, assign, user_key
from llmops.local.serve import CHAT_ROUTE, VERSION_HEADER, RoutingTable, create_app
from tests.unit.test_local_serving import CHAT, Replicas, client_for, fake_replica, sample, table

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class V:
    version: str
    weight: int


def test_assignment_is_sticky_and_follows_the_weights() -> None:
    variants = [V("v1", 90), V("v2", 10)]
    keys = [f"user-{i}" for i in range(20000)]
    first = {k: assign(k, variants) for k in keys}
    assert all(assign(k, variants) == first[k] for k in keys[:2000])
    share = Counter(v.version for v in first.values() if v)["v2"] / len(keys)
    assert 0.09 < share < 0.11
    assert assign("anyone", [V("v1", 0), V("v2", 100)]) == V("v2", 100)
    assert assign("anyone", [V("v1", 0)]) is None


def test_a_growing_canary_keeps_its_users_and_takes_only_from_the_baseline() -> None:
    keys = [f"user-{i}" for i in range(5000)]
    at10 = {k: assign(k, [V("v1", 90), V("v2", 10)]) for k in keys}
    at50 = {k: assign(k, [V("v1", 50), V("v2", 50)]) for k in keys}
    canary10 = {k for k, v in at10.items() if v and v.version == "v2"}
    canary50 = {k for k, v in at50.items() if v and v.version == "v2"}
    assert canary10 <= canary50
    assert 0.45 < len(canary50) / len(keys) < 0.55


def test_user_key_comes_from_the_body_then_the_header() -> None:
    assert user_key({"user": "alice"}, {"x-llmops-user": "bob"}) == "alice"
    assert user_key({}, {"x-llmops-user": "bob"}) == "bob"
    assert user_key({"user": ""}, {}) is None


def test_response_log_is_bounded_and_rates_once() -> None:
    log = ResponseLog(capacity=3)
    for i in range(5):
        log.remember(f"r{i}", "v1")
    assert len(log) == 3 and log.take("r0") is None
    assert log.take("r4") == "v1" and log.take("r4") is None


def front(shadow: ShadowRoute | None = None) -> tuple[object, dict[str, object]]:
    apps = {"a:1": fake_replica("A"), "b:1": fake_replica("B"), "s:1": fake_replica("S")}
    t = table(("v1", 50, ["a:1"]), ("v2", 50, ["b:1"]))
    t = RoutingTable.model_validate({**t.model_dump(), "shadow": shadow.model_dump() if shadow else None})
    return create_app(table=t, transport=Replicas(apps)), apps


def test_sticky_users_feedback_and_counters_through_the_front() -> None:
    app, _ = front()
    with client_for(app) as c:  # type: ignore[arg-type]
        versions = {c.post(CHAT_ROUTE, json={**CHAT, "user": "alice"}).headers[VERSION_HEADER] for _ in range(8)}
        assert len(versions) == 1
        r = c.post(CHAT_ROUTE, json={**CHAT, "user": "alice"})
        rid, version = r.headers["x-llmops-response-id"], r.headers[VERSION_HEADER]
        assert r.json()["id"] == rid
        ok = c.post("/v1/feedback", json={"id": rid, "score": 1})
        assert ok.status_code == 200 and ok.json()["version"] == version
        assert c.post("/v1/feedback", json={"id": rid, "score": 1}).status_code == 404  # once only
        bad = c.post("/v1/feedback", json={"id": "x", "score": 3})
        assert bad.status_code == 400 and "score" in bad.json()["error"]["message"]
        assert c.post("/v1/feedback", content=b"{not json").status_code == 400
        low = c.post(CHAT_ROUTE, json=CHAT)
        c.post("/v1/feedback", json={"id": low.headers["x-llmops-response-id"], "score": 0.2})
        labels = {"model": "tiny-chat", "version": version}
        assert sample(app, "llmops_feedback_total", labels) >= 1  # type: ignore[arg-type]
        assert sample(app, "llmops_feedback_positive_total", labels) == 1  # type: ignore[arg-type]
        text = c.get("/metrics").text
        assert 'llmops_feedback_total{model="tiny-chat"' in text


def test_shadow_gets_a_copy_of_sampled_requests_and_never_answers() -> None:
    app, apps = front(ShadowRoute(version="v3", percent=100, upstreams=["s:1"]))

    async def run() -> list[str]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(  # type: ignore[attr-defined]
                transport=transport, base_url="http://front"
            ) as c,
        ):
            bodies = [(await c.post(CHAT_ROUTE, json=CHAT)).text for _ in range(5)]
            await app.state.experiments.drain()  # type: ignore[attr-defined]
            return bodies

    bodies = asyncio.run(run())
    assert all("<S>" not in b for b in bodies)
    assert len(apps["s:1"].state.requests) == 5  # type: ignore[attr-defined]
    assert sample(app, "llmops_shadow_requests_total", {"model": "tiny-chat", "version": "v3", "code": "200"}) == 5  # type: ignore[arg-type]
    assert (
        sample(
            app, "llmops_requests_total", {"model": "tiny-chat", "version": "v3", "route": CHAT_ROUTE, "code": "200"}
        )
        == 0
    )  # type: ignore[arg-type]
