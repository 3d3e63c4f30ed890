"""Experiments: the report over a day of metrics, and the front end's added latency.

1. The report (aggregation + every test + the verdict) for 10 variants over a day:
   - CloudWatch at one-second resolution: GetMetricData results of 86,400 periods for
     each series of each variant (8 series x 10 variants), aggregated and judged;
   - Prometheus: a day's latency histogram at 10 requests/s per variant (864,000
     observations each), ranked for Mann-Whitney.
   Goal: under 1 s each.
2. The front's added latency from the experiment hooks (sticky hashing of a user key,
   a response id kept for feedback, shadow sampling at 10 % to a shadow replica), at
   1 client, p50 with the hooks on vs off, in process against replicas that answer
   instantly (the front's own cost is all that is measured). Requests alternate on/off
   one by one, so both halves see the same machine load; a mirrored copy runs on the
   front's event loop and is awaited before the next request is timed (its replica
   answers in process here; a real shadow replica is another process). "Off" leaves
   only the three early-returning calls of the hook. The medians over rounds are
   compared. Goal: under 2 %.

    python benchmarks/bench_experiments.py [--quick] [--rounds 5] [--requests 400]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.quick import quick  # noqa: E402
from llmops.experiments.cloudwatch import aggregate, metric_queries  # noqa: E402
from llmops.experiments.data import ExperimentData, Histogram, VariantData  # noqa: E402
from llmops.experiments.stats import Plan, analyse  # noqa: E402
from llmops.local.experiment_routing import ShadowRoute  # noqa: E402
from llmops.local.serve import CHAT_ROUTE, RoutingTable, create_app  # noqa: E402
from llmops.registry import Variant  # noqa: E402
from tests.unit.test_local_serving import CHAT, Replicas, fake_replica, table  # noqa: E402

DAY = 86_400
VARIANTS = [Variant(version=f"v{i}", weight=w) for i, w in enumerate([55] + [5] * 9)]
PLAN = Plan(alpha=0.05, looks=24, min_samples=200, metrics=("error_rate", "latency", "feedback"))


def cloudwatch_day(rng: np.random.Generator) -> dict[str, tuple[list[datetime], list[float]]]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ts = [start + timedelta(seconds=s) for s in range(DAY)]
    names = {v.version: v.version for v in VARIANTS}
    series: dict[str, tuple[list[datetime], list[float]]] = {}
    for q in metric_queries("bench", names, 1):
        qid = q["Id"]
        if qid.endswith(("_p50", "_p95")):
            series[qid] = (ts[:1], [150_000.0])
        elif qid.endswith("_lat"):
            series[qid] = (ts, rng.normal(150_000, 20_000, DAY).tolist())
        else:
            series[qid] = (ts, rng.poisson(3, DAY).astype(float).tolist())
    return series


def time_it(fn: object, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best


def bench_report() -> list[tuple[str, float, float]]:
    rng = np.random.default_rng(0)
    series = cloudwatch_day(rng)
    names = {v.version: v.version for v in VARIANTS}

    def cloudwatch() -> None:
        data = ExperimentData("bench", "prod", 0, DAY, aggregate(series, names, VARIANTS))
        analyse(data, PLAN)

    bounds = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, float("inf"))
    per_variant = 10 * DAY
    variants = []
    for v in VARIANTS:
        counts = rng.multinomial(per_variant, np.full(len(bounds), 1 / len(bounds))).astype(np.float64)
        variants.append(
            VariantData(
                v.version,
                v.weight,
                per_variant,
                int(per_variant * 0.01),
                feedback_total=per_variant // 10,
                feedback_positive=per_variant // 20,
                latency=Histogram(bounds, counts),
            )
        )

    def prometheus() -> None:
        analyse(ExperimentData("bench", "prod", 0, DAY, variants), PLAN)

    return [
        ("report: CloudWatch, 1-s periods, 10 variants, 1 day", time_it(cloudwatch), 1.0),
        ("report: Prometheus histograms, 10 variants x 864k requests", time_it(prometheus), 1.0),
    ]


async def p50_pair(client: httpx.AsyncClient, experiments: Any, n: int) -> tuple[float, float]:
    """p50 with the hooks on and off, alternating request by request so both see the same load."""
    on, off = [], []
    for i in range(2 * n):
        enabled = i % 2 == 0
        experiments.enabled = enabled
        body = {**CHAT, "user": f"user-{i % 97}"}
        t0 = time.perf_counter()
        r = await client.post(CHAT_ROUTE, json=body)
        (on if enabled else off).append(time.perf_counter() - t0)
        assert r.status_code == 200, r.text
        await experiments.drain()  # a mirrored copy finishes before the next request is timed
    return statistics.median(on), statistics.median(off)


async def bench_front(rounds: int, requests: int) -> tuple[float, float]:
    apps = {"a:1": fake_replica("A"), "b:1": fake_replica("B"), "s:1": fake_replica("S")}
    base = table(("v1", 90, ["a:1"]), ("v2", 10, ["b:1"]))
    shadow = ShadowRoute(version="v3", percent=10, upstreams=["s:1"])
    t = RoutingTable.model_validate({**base.model_dump(), "shadow": shadow.model_dump()})
    app = create_app(table=t, transport=Replicas(apps), health_interval=3600)
    experiments = app.state.experiments
    on, off = [], []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://front") as client,
    ):
        await p50_pair(client, experiments, 50)  # warm-up
        for _ in range(rounds):
            a, b = await p50_pair(client, experiments, requests)
            on.append(a)
            off.append(b)
    return statistics.median(on), statistics.median(off)


def main() -> int:
    small = quick()  # quick mode: the smallest sizes, to prove the script runs
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1 if small else 5)
    parser.add_argument("--requests", type=int, default=20 if small else 400)
    args = parser.parse_args()
    print(f"{'measure':<66}{'measured':>12}{'goal':>12}")
    for name, seconds, goal in bench_report():
        ok = "ok" if seconds < goal else "MISSED"
        print(f"{name:<66}{seconds:>11.3f}s{'< ' + str(goal) + ' s':>12}  {ok}")
    on, off = asyncio.run(bench_front(args.rounds, args.requests))
    added = (on / off - 1) * 100
    print(f"{'front p50 at 1 client, hooks off':<66}{off * 1000:>10.3f}ms")
    print(f"{'front p50 at 1 client, hooks on (sticky, feedback id, shadow 10%)':<66}{on * 1000:>10.3f}ms")
    ok = "ok" if added < 2 else "MISSED"
    print(f"{'front: added latency':<66}{added:>11.2f}%{'< 2 %':>12}  {ok}")
    print(f"{'front: added latency, absolute':<66}{(on - off) * 1e6:>10.1f}us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
