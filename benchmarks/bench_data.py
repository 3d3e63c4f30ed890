"""Data management benchmarks, each printed beside its goal.

- `llmops data validate` on a generated ~100 MB dataset, run as a command (goal: under 30 s on 2 cores);
- one drift run over 10,000 captured records (goal: under 10 s);
- the latency capture adds to the front at 1 client, on and off side by side (goal: under 2 %).
  The replica is an in-process fake that answers at once, so the front's own time is the
  whole request: the share is the worst case; a real model's generation time dilutes it.

    .venv/bin/python benchmarks/bench_data.py [--mb 100] [--requests 400]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmops.datasets.capture import CaptureConfig, CaptureWriter, read_capture  # noqa: E402
from llmops.datasets.drift import compute_drift  # noqa: E402
from llmops.datasets.registry import file_md5, load_datasets  # noqa: E402

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

    def run(capture: CaptureWriter | None) -> list[float]:
        fakes = {"127.0.0.1:9001": fake_replica("a")}
        app = create_app(
            table=table(("v1", 100, ["127.0.0.1:9001"])), transport=Replicas(fakes), health_interval=60, capture=capture
        )
        times = []
        with TestClient(app, client=("127.0.0.1", 50000)) as client:
            for _ in range(20):  # warm up
                client.post(CHAT_ROUTE, json=body)
            for _ in range(requests):
                started = time.perf_counter()
                assert client.post(CHAT_ROUTE, json=body).status_code == 200
                times.append(time.perf_counter() - started)
        return times

    with tempfile.TemporaryDirectory() as tmp:
        writer = CaptureWriter(CaptureConfig(root=tmp, model="tiny-chat", pii_entities=["EMAIL_ADDRESS"]))
        rounds = {"off": [], "on": []}  # type: dict[str, list[float]]
        for _ in range(2):  # interleaved, so drift of the machine's load hits both alike
            rounds["off"] += run(None)
            rounds["on"] += run(writer)
        writer.flush(timeout=120)
        writer.close()
    off, on = statistics.median(rounds["off"]), statistics.median(rounds["on"])
    print(
        f"capture at 1 client, median of {len(rounds['on'])}: off {off * 1e3:.2f} ms, on {on * 1e3:.2f} ms, "
        f"added {(on - off) * 1e3:+.3f} ms = {(on - off) / off:+.1%} of a request to an instant fake replica "
        "(goal < 2 %)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=100)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    bench_validate(args.mb)
    bench_drift(args.records)
    bench_capture_latency(args.requests)


if __name__ == "__main__":
    main()
