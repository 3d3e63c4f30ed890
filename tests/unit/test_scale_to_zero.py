"""Scale to zero in the front, with a real replica process (a no-op server answering instantly).

Proves: after `idle_seconds` without a request the front stops the replica's process and
leaves the parked marker the endpoint provider reads; `/health` says idle (200); the next
request starts the replica from its recipe and is answered (the cold start is recorded);
a replica that cannot start within `cold_start_wait` gets the client a 503 with
Retry-After rather than a hang; the front counts prompt and completion tokens per version
and asks a streaming replica for its usage event.
Cannot prove: a real model's cold start (benchmarks/bench_cold_start.py and the engine
test time it).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from components.local.process import ProcessRef, is_running, port_open
from llmops.local.serve import CHAT_ROUTE, create_app
from llmops.local.serving.routing import Autoscale, Launch, RoutingTable, Upstream, VariantRoute
from llmops.local.serving.supervisor import parked_marker, read_pid_file, spawn
from tests.support.project import free_port_base
from tests.unit.test_local_serving import CHAT, Replicas, client_for, fake_replica, sample, table

pytestmark = pytest.mark.unit

NO_OP_REPLICA = """
import sys, uvicorn
from fastapi import FastAPI
app = FastAPI()
ANSWER = {"id": "x", "object": "chat.completion", "model": "m",
          "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "length"}]}
@app.get("/health")
async def health(): return {"status": "ok"}
@app.post("/v1/chat/completions")
async def chat(body: dict): return ANSWER
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def _idle_table(tmp_path: Path, argv: list[str], port: int, wait: float) -> RoutingTable:
    launch = Launch(argv=argv, cwd=str(tmp_path), log=str(tmp_path / "r.log"), pid_file=str(tmp_path / "r.pid"))
    return RoutingTable(
        model="tiny-chat",
        autoscale=Autoscale(target_in_flight=4, idle_seconds=1.0, cold_start_wait=wait),
        variants=[
            VariantRoute(version="v1", weight=100, upstreams=[Upstream(address=f"127.0.0.1:{port}", launch=launch)])
        ],
    )


def _live(pid_file: Path) -> ProcessRef:
    live = read_pid_file(pid_file)
    assert live is not None
    return ProcessRef(live.pid, live.started)


def _until(what: str, probe: Callable[[], bool], timeout: float = 30) -> None:
    """Until `probe()` is true (called no more than needed: a probe may send a request)."""
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_an_idle_replica_is_parked_and_the_next_request_starts_it(tmp_path: Path) -> None:
    port = free_port_base(2)
    t = _idle_table(tmp_path, [sys.executable, "-c", NO_OP_REPLICA, str(port)], port, wait=60)
    launch = t.variants[0].upstreams[0].launch
    assert launch is not None
    spawn(launch)
    first = _live(Path(launch.pid_file))
    # Up before the front probes it, or its supervisor would restart a replica still starting.
    _until("the replica starts", lambda: port_open(port))
    app = create_app(table=t, health_interval=0.2)
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        try:
            _until("the replica answers", lambda: client.post(CHAT_ROUTE, json=CHAT).status_code == 200)
            _until("the idle replica is stopped", lambda: not is_running(first))
            assert parked_marker(launch).exists()
            health = client.get("/health")
            assert health.status_code == 200 and health.json()["status"] == "idle"

            with ThreadPoolExecutor(3) as pool:  # the first request wakes it; the others wait for the same wake
                codes = list(pool.map(lambda _: client.post(CHAT_ROUTE, json=CHAT).status_code, range(3)))
            assert codes == [200, 200, 200]
            woken = _live(Path(launch.pid_file))
            assert woken != first and is_running(woken) and not parked_marker(launch).exists()
            assert sample(app, "llmops_cold_start_seconds_count", {"model": "tiny-chat", "version": "v1"}) == 1
            assert (
                sample(app, "llmops_prompt_tokens_total", {"model": "tiny-chat", "version": "v1"}) == 20
            )  # four answers
            assert (
                sample(
                    app,
                    "llmops_replica_up_seconds_total",
                    {"model": "tiny-chat", "version": "v1", "replica": f"127.0.0.1:{port}"},
                )
                > 0
            )
        finally:
            from llmops.local.serving.supervisor import kill

            kill(read_pid_file(Path(launch.pid_file)))


def test_a_replica_that_does_not_start_in_time_gets_a_503_with_retry_after(tmp_path: Path) -> None:
    port = free_port_base(2)
    t = _idle_table(tmp_path, [sys.executable, "-c", "import time; time.sleep(60)"], port, wait=1.0)
    launch = t.variants[0].upstreams[0].launch
    assert launch is not None
    parked_marker(launch).write_text("0\n")  # parked before this front started: adopted as parked
    app = create_app(table=t, health_interval=0.2)
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        try:
            began = time.monotonic()
            r = client.post(CHAT_ROUTE, json=CHAT)
            assert r.status_code == 503 and r.headers["Retry-After"] == "5", r.text
            assert "starting from zero replicas" in r.json()["error"]["message"]
            assert 1.0 <= time.monotonic() - began < 10
        finally:
            from llmops.local.serving.supervisor import kill

            kill(read_pid_file(Path(launch.pid_file)))


def test_tokens_are_counted_per_version_and_streams_are_asked_for_usage() -> None:
    fakes = {"127.0.0.1:9001": fake_replica("a")}
    app = create_app(table=table(("v1", 100, ["127.0.0.1:9001"])), transport=Replicas(fakes), health_interval=60)
    with client_for(app) as client:
        assert client.post(CHAT_ROUTE, json=CHAT).status_code == 200
        with client.stream("POST", CHAT_ROUTE, json={**CHAT, "stream": True}) as r:
            assert r.status_code == 200 and list(r.iter_lines())
    labels = {"model": "tiny-chat", "version": "v1"}
    assert sample(app, "llmops_prompt_tokens_total", labels) == 6
    assert sample(app, "llmops_completion_tokens_total", labels) == 6
    assert fakes["127.0.0.1:9001"].state.requests[-1]["stream_options"] == {"include_usage": True}
