"""Scale to zero on the local target: how long a request waits for a parked endpoint.

Starts a real local endpoint with the provider code the stack uses (one replica of the
tiny-chat architecture with initialised weights, behind the front end) with
`idle_seconds` of a few seconds, then in rounds: waits until the front has parked the
replica (its process gone), sends one chat completion and times it to the answer; then
a warm request for comparison. Prints each round, the median and the worst, beside
their references: the bounded wait a request is given (`cold_start_wait`, 60 s by
default; past it the answer is a 503 with Retry-After) and the replica's start at
deploy time (to healthy and warm), which a cold start repeats minus the warm-up call.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from components.local.endpoint import FrontendProvider, ReplicaSetProvider  # noqa: E402
from components.local.process import ProcessRef, is_running  # noqa: E402
from llmops.local.serve import CHAT_ROUTE  # noqa: E402
from llmops.local.serving.supervisor import read_pid_file  # noqa: E402
from llmops.local.train import initialised_checkpoint  # noqa: E402
from tests.support.local_endpoint import one_replica  # noqa: E402
from tests.support.project import free_port_base  # noqa: E402

BODY = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}
WAIT = 60.0  # the registry's default cold_start_wait_seconds


def parked(pid_file: Path, timeout: float) -> bool:
    live = read_pid_file(pid_file)
    ref = ProcessRef(live.pid, live.started) if live else None
    deadline = time.monotonic() + timeout
    while ref is not None and is_running(ref) and time.monotonic() < deadline:
        time.sleep(0.2)
    return ref is None or not is_running(ref)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=float, default=3.0, help="idle_seconds before the replica is parked")
    parser.add_argument("--quick", action="store_true", help="one round (the test suite's smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        model_dir = initialised_checkpoint(ROOT, Path(tmp) / "model")
        common = {
            "model": "bench",
            "state_dir": str(Path(tmp) / "state"),
            "base_port": free_port_base(),
            "port_span": 40,
            "health_timeout": 300.0,
            "idle_seconds": args.idle,
            "cold_start_wait": WAIT,
        }
        replicas, front = ReplicaSetProvider(), FrontendProvider()
        t = time.perf_counter()
        rs = replicas.create(one_replica(common, model_dir, concurrency=16))
        deploy_start = time.perf_counter() - t
        assert rs.outs is not None
        routes = [
            {
                "version": "v1",
                "weight": 100,
                "tokenizer": str(model_dir),
                "upstreams": rs.outs["replicas"],
                "spares": [],
            }
        ]
        fe = front.create(
            {**common, "owner": "bench", "max_new_tokens": 4, "max_context": 256, "concurrency": 16, "routes": routes}
        )
        assert fe.outs is not None
        url, pid_file = fe.outs["url"], Path(rs.outs["replicas"][0]["launch"]["pid_file"])
        colds, warms = [], []
        try:
            with httpx.Client(timeout=WAIT + 30) as http:
                for i in range(args.rounds):
                    assert parked(pid_file, args.idle + 30), "the replica was never parked"
                    t = time.perf_counter()
                    r = http.post(f"{url}{CHAT_ROUTE}", json=BODY)
                    colds.append(time.perf_counter() - t)
                    assert r.status_code == 200, r.text
                    t = time.perf_counter()
                    assert http.post(f"{url}{CHAT_ROUTE}", json=BODY).status_code == 200
                    warms.append(time.perf_counter() - t)
                    print(f"round {i + 1}: cold {colds[-1]:.2f} s, then warm {warms[-1] * 1000:.0f} ms")
                metrics = http.get(f"{url}/metrics").text
        finally:
            front.delete("bench-front", fe.outs)
            replicas.delete(rs.id, rs.outs)
        healthy = [ln for ln in metrics.splitlines() if ln.startswith("llmops_cold_start_seconds_sum{")]
        total = float(healthy[0].rsplit(" ", 1)[1]) if healthy else float("nan")
        print(
            f"cold start, request to answer: median {statistics.median(colds):.2f} s, worst {max(colds):.2f} s "
            f"(reference: the bounded wait, {WAIT:.0f} s; the replica's start at deploy, {deploy_start:.2f} s)"
        )
        print(
            f"to the first healthy replica (llmops_cold_start_seconds): {total / len(colds):.2f} s mean; "
            f"a warm request: median {statistics.median(warms) * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
