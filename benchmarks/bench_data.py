"""Data management benchmarks, each printed beside its goal.

- `llmops data validate` on a generated ~100 MB dataset, run as a command (goal: under 30 s on 2 cores);
- one drift run over 10,000 captured records (goal: under 10 s);
- the latency capture adds to the front at 1 client, on and off side by side (goal: under 2 %),
  twice: against a real replica serving the tiny-chat architecture (two fronts started by the
  stack's provider, one capturing, requests alternating between them: the goal's figure), and
  against an in-process fake replica that answers at once, so the front's own time is the whole
  request (the hook's own cost, with no generation to dilute it).

    .venv/bin/python benchmarks/bench_data.py [--quick] [--mb 100] [--requests 400] [--served-requests 200]
        [--tokens 16]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.quick import quick  # noqa: E402
from llmops.datasets.capture import CaptureConfig, CaptureWriter, read_capture  # noqa: E402
from llmops.datasets.drift import compute_drift  # noqa: E402
from llmops.datasets.registry import DEFAULT_ENTITIES, file_md5, load_datasets  # noqa: E402

WORDS = [
    "model",
    "endpoint",
    "stack",
    "registry",
    "training",
    "artifact",
    "version",
    "replica",
    "traffic",
    "metric",
    "alert",
    "latency",
    "prometheus",
    "capture",
    "dataset",
    "split",
    "eval",
    "train",
    "deploy",
    "rollout",
    "health",
    "port",
    "process",
    "token",
    "answer",
    "question",
    "platform",
    "local",
    "cloud",
    "cluster",
    "node",
    "pool",
    "budget",
    "policy",
    "preview",
    "change",
    "commit",
    "branch",
]


def _record(rng: random.Random, i: int) -> str:
    if rng.random() < 0.6:
        a, b = rng.randint(0, 10**5), rng.randint(0, 10**5)  # sums stay under 7 digits (phone-like)
        return f"User: What is {a} plus {b}? (case {i})\nAssistant: {a} plus {b} is {a + b}."
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30)))
    return f"User: Explain item {i}.\nAssistant: {words.capitalize()}."


def make_dataset(root: Path, megabytes: float) -> None:
    """A copy of the shipped dataset entry whose splits are ~`megabytes` of generated records."""
    shutil.copytree(ROOT / "models" / "datasets", root / "models" / "datasets")
    rng = random.Random(0)
    folder = root / "models" / "data" / "tiny-chat-corpus"
    folder.mkdir(parents=True)
    target = int(megabytes * 1e6)
    sizes = {"train.txt": 0.9, "eval.txt": 0.05, "held-out.txt": 0.05}
    i = 0
    for name, share in sizes.items():
        chunks, size = [], 0
        while size < target * share:
            rec = _record(rng, i)
            chunks.append(rec)
            size += len(rec) + 2
            i += 1
        (folder / name).write_text("\n\n".join(chunks) + "\n")
    # Pin the generated content so only the checks themselves report.
    entry = root / "models" / "datasets" / "tiny-chat-corpus.yaml"
    text = entry.read_text()
    registry, _ = load_datasets(ROOT)
    for _split, spec in registry.datasets["tiny-chat-corpus"].splits.items():
        text = text.replace(spec.md5, file_md5(folder / spec.file))
    entry.write_text(text)


def bench_validate(megabytes: float) -> None:
    """`llmops data validate` as a user runs it: a fresh process, imports and PII workers included."""
    import json
    import os
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_dataset(root, megabytes)
        size = sum(p.stat().st_size for p in (root / "models" / "data").rglob("*.txt")) / 1e6
        command = [sys.executable, "-m", "llmops.cli", "data", "validate", "tiny-chat-corpus", "--json"]
        started = time.perf_counter()
        done = subprocess.run(command, env={**os.environ, "LLMOPS_ROOT": str(root)}, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode not in (0, 1):
            raise SystemExit(f"llmops data validate failed:\n{done.stderr}")
        [summary] = json.loads(done.stdout)["summary"]["datasets"]
        records = sum(summary["records"].values())
        checks = summary["seconds"]
        print(
            f"llmops data validate {size:.0f} MB ({records:,} records, {os.cpu_count()} cores): {seconds:.1f} s "
            f"({checks:.1f} s checks + {seconds - checks:.1f} s start-up and imports) (goal < 30 s); "
            f"{summary['problems']} problem(s)"
        )


def bench_drift(n: int) -> None:
    registry, _ = load_datasets(ROOT)
    dataset = registry.get("tiny-chat-corpus")
    with tempfile.TemporaryDirectory() as tmp:
        writer = CaptureWriter(CaptureConfig(root=tmp, model="tiny-chat", max_total_bytes=1 << 30))
        rng = random.Random(1)
        for i in range(n):
            a, b = rng.randint(0, 50), rng.randint(0, 50)
            writer.offer(
                "v1",
                {"messages": [{"role": "user", "content": f"What is {a} plus {b}?"}], "max_tokens": 32},
                {"choices": [{"message": {"content": f"{a} plus {b} is {a + b}."}}], "id": str(i)},
            )
        writer.flush(timeout=600)
        writer.close()
        compute_drift("tiny-chat", dataset, ROOT, list(read_capture(Path(tmp), "tiny-chat"))[:50])  # imports
        started = time.perf_counter()
        exchanges = list(read_capture(Path(tmp), "tiny-chat"))
        result = compute_drift("tiny-chat", dataset, ROOT, exchanges)
        seconds = time.perf_counter() - started
    print(f"drift over {len(exchanges):,} captured records: {seconds:.2f} s (goal < 10 s); score {result.score}")


def bench_capture_latency(requests: int) -> None:
    from fastapi.testclient import TestClient

    from llmops.local.serve import CHAT_ROUTE, create_app
    from tests.unit.test_local_serving import Replicas, fake_replica, table

    body = {"model": "tiny-chat", "messages": [{"role": "user", "content": "What is 2 plus 3?"}], "max_tokens": 8}

    def app(capture: CaptureWriter | None) -> Any:
        fakes = {"127.0.0.1:9001": fake_replica("a")}
        return create_app(
            table=table(("v1", 100, ["127.0.0.1:9001"])), transport=Replicas(fakes), health_interval=60, capture=capture
        )

    with tempfile.TemporaryDirectory() as tmp:
        writer = CaptureWriter(CaptureConfig(root=tmp, model="tiny-chat", pii_entities=list(DEFAULT_ENTITIES)))
        times: dict[str, list[float]] = {"off": [], "on": []}
        with (
            TestClient(app(None), client=("127.0.0.1", 50000)) as off,
            TestClient(app(writer), client=("127.0.0.1", 50000)) as on,
        ):
            clients = {"off": off, "on": on}
            for i in range(requests + 20):
                order = ("off", "on") if i % 2 else ("on", "off")  # alternating, so load drift hits both alike
                for name in order:
                    started = time.perf_counter()
                    assert clients[name].post(CHAT_ROUTE, json=body).status_code == 200
                    if i >= 20:  # the first requests warm both up
                        times[name].append(time.perf_counter() - started)
        writer.flush(timeout=120)
        writer.close()
    off_s, on_s = statistics.median(times["off"]), statistics.median(times["on"])
    print(
        f"capture at 1 client, instant fake replica (the hook's own cost), median of {requests}: "
        f"off {off_s * 1e3:.2f} ms, on {on_s * 1e3:.2f} ms, added {(on_s - off_s) * 1e3:+.3f} ms = "
        f"{(on_s - off_s) / off_s:+.1%} of a request that does no generation"
    )


def bench_capture_served(requests: int, tokens: int) -> None:
    """The front's latency at 1 client with capture off and on, in front of a real replica serving
    the tiny-chat architecture (initialised weights, so every request generates `tokens` tokens):
    two fronts started by the stack's provider, one capturing with the default PII redaction,
    both routing to the same replica, requests alternating between them."""
    import httpx

    from components.local.endpoint import FrontendProvider, ReplicaSetProvider
    from llmops.local.serve import CHAT_ROUTE
    from llmops.local.train import initialised_checkpoint
    from tests.support.local_endpoint import one_replica
    from tests.support.project import free_port_base

    with tempfile.TemporaryDirectory(prefix="bench-capture-") as tmp:
        model_dir = initialised_checkpoint(ROOT, Path(tmp) / "model")
        common = {"state_dir": str(Path(tmp) / "state"), "port_span": 20, "health_timeout": 300.0}
        replicas, front = ReplicaSetProvider(), FrontendProvider()
        replica_common = {**common, "model": "tiny-chat", "base_port": free_port_base(20)}
        rs = replicas.create(one_replica(replica_common, model_dir, concurrency=4))
        assert rs.outs is not None
        routes = [{"version": "v1", "weight": 100, "tokenizer": str(model_dir), "upstreams": rs.outs["replicas"]}]
        capture = CaptureConfig(root=str(Path(tmp) / "capture"), model="tiny-chat", pii_entities=list(DEFAULT_ENTITIES))
        fronts = {}
        try:
            for name, settings in (("off", None), ("on", capture.model_dump())):
                created = front.create(
                    {
                        **common,
                        "model": f"capture-{name}",
                        "base_port": free_port_base(20),
                        "owner": "bench",
                        "max_new_tokens": tokens,
                        "max_context": 256,
                        "concurrency": 4,
                        "routes": routes,
                        "capture": settings,
                    }
                )
                fronts[name] = created
            body = {"messages": [{"role": "user", "content": "What is 2 plus 3?"}], "max_tokens": tokens}
            times: dict[str, list[float]] = {"off": [], "on": []}
            with httpx.Client(timeout=60) as http:
                for i in range(requests + 10):
                    order = ("off", "on") if i % 2 else ("on", "off")  # neither always goes first
                    for name in order:
                        started = time.perf_counter()
                        http.post(f"{fronts[name].outs['url']}{CHAT_ROUTE}", json=body).raise_for_status()
                        if i >= 10:  # the first requests warm both paths up
                            times[name].append(time.perf_counter() - started)
            captured = sum(1 for _ in read_capture(Path(capture.root), "tiny-chat"))
        finally:
            for created in fronts.values():
                front.delete(created.id, created.outs)
            replicas.delete(rs.id, rs.outs)
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    print(
        f"capture at 1 client, real replica ({tokens} tokens per answer), median of {requests}: "
        f"off {off * 1e3:.2f} ms, on {on * 1e3:.2f} ms, added {(on - off) * 1e3:+.2f} ms = {(on - off) / off:+.1%} "
        f"(goal < 2 %); {captured} exchanges captured"
    )


def main() -> None:
    small = quick()  # quick mode: the smallest sizes, to prove the script runs
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=1 if small else 100)
    parser.add_argument("--records", type=int, default=200 if small else 10_000)
    parser.add_argument("--requests", type=int, default=20 if small else 400)
    parser.add_argument(
        "--served-requests", type=int, default=6 if small else 200, help="per front, against the real replica"
    )
    parser.add_argument(
        "--tokens", type=int, default=4 if small else 16, help="generated per answer by the real replica"
    )
    args = parser.parse_args()
    bench_validate(args.mb)
    bench_drift(args.records)
    bench_capture_latency(args.requests)
    bench_capture_served(args.served_requests, args.tokens)


if __name__ == "__main__":
    main()
