"""Local serving: endpoint latency and throughput against the model called in process.

Starts a real local endpoint with the provider code the stack uses (one replica
on transformers' continuous-batching manager, behind the front end), then:

- at 1 client, request by request in turn: the same checkpoint loaded here with
  `generate()` called in a loop as a program without a server would (the floor),
  the endpoint, and the replica directly; and the front end's own hop, against a
  replica that answers instantly;
- the endpoint at 4 and 16 concurrent clients (non-streaming chat completions), in
  rounds that alternate with the in-process loop serving as many requests;
- 64 clients against `concurrency` 16 (32 admitted: 16 in flight, 16 queued): the
  throughput of the served requests, their p95, and the share shed with 429;
- kill -9 of the only replica: seconds until the endpoint answers 200 again (the
  front's supervisor restarts it; no operator).

On a shared machine the load drifts from second to second, so every comparison is
made between measurements taken side by side, and medians over rounds are printed.

Prints p50/p95 latency and generated tokens/s. Goals: the endpoint adds under 15 %
to the in-process latency at concurrency 1, and keeps 3.8x the in-process loop's
tokens/s at 16 clients by batching (the figure with `transformers serve` replicas).

The checkpoint has the tiny-chat architecture and tokenizer with initialised
weights (one trainer step at a negligible learning rate), so every request
generates exactly `--tokens` tokens and the numbers compare like with like.

`--cold-up` also deploys a fresh copy of the project (full training run) and
splits the cold `pulumi up` into training, replica start, front and Prometheus
start, from the engine's per-resource durations; `make setup`'s own time is
measured when it runs (`--setup`), since on an installed machine it is a no-op.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from benchmarks.quick import quick  # noqa: E402
from components.local.endpoint import FrontendProvider, ReplicaSetProvider  # noqa: E402
from components.local.process import spawn_detached, stop, wait_until  # noqa: E402
from llmops.local.serve import CHAT_ROUTE  # noqa: E402
from llmops.local.serving.supervisor import read_pid_file  # noqa: E402
from llmops.local.train import initialised_checkpoint  # noqa: E402
from tests.support.local_endpoint import one_replica  # noqa: E402
from tests.support.project import copy_project, free_port_base  # noqa: E402

PROMPT = "Tell me a story about a small robot."


def summary(latencies: list[float], tokens: int, elapsed: float) -> dict[str, float]:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": p95 * 1000,
        "tokens_per_s": tokens / elapsed,
        "requests": len(latencies),
    }


def in_process_generator(model_dir: Path, tokens: int) -> Callable[[], int]:
    """One request's work without a server: chat template, generate, decode; returns tokens generated."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # The replica's torch threads (see ReplicaSetProvider), so both sides compute alike and the
    # comparison shows what serving adds; torch's default (every CPU) collapses on a shared machine.
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // 2))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    messages = [{"role": "user", "content": PROMPT}]

    def one() -> int:
        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=tokens, do_sample=False)
        tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        return int(out.shape[1] - inputs["input_ids"].shape[1])

    one()  # warm-up, as the server's replicas are warmed up before they take traffic
    return one


def paired(
    generate: Callable[[], int], endpoint: str, replica: str, requests: int, tokens: int
) -> dict[str, dict[str, float]]:
    """Concurrency 1, interleaved request by request (in process, endpoint, replica), so that
    the load of a shared machine drifting during the run hits all three alike."""
    body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": tokens, "temperature": 0}
    runs: dict[str, tuple[list[float], list[int]]] = {k: ([], []) for k in ("in process", "endpoint", "replica")}

    def timed(name: str, call: Callable[[], int]) -> None:
        t = time.perf_counter()
        n = call()
        runs[name][0].append(time.perf_counter() - t)
        runs[name][1].append(n)

    with httpx.Client(timeout=300) as http:

        def via(url: str) -> Callable[[], int]:
            def call() -> int:
                r = http.post(f"{url}{CHAT_ROUTE}", json=body)
                r.raise_for_status()
                return int(r.json()["usage"]["completion_tokens"])

            return call

        via(endpoint)()
        via(replica)()
        for _ in range(requests):
            timed("in process", generate)
            timed("endpoint", via(endpoint))
            timed("replica", via(replica))
    return {k: summary(lat, sum(n), sum(lat)) for k, (lat, n) in runs.items()}


async def load(url: str, concurrency: int, requests: int, tokens: int) -> dict[str, float]:
    body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": tokens, "temperature": 0}
    latencies: list[float] = []
    generated = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal generated
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t = time.perf_counter()
            r = await http.post(f"{url}{CHAT_ROUTE}", json=body)
            latencies.append(time.perf_counter() - t)
            r.raise_for_status()
            generated += int(r.json()["usage"]["completion_tokens"])

    async with httpx.AsyncClient(timeout=300) as http:
        await http.post(f"{url}{CHAT_ROUTE}", json=body)  # connection and warm-up
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return summary(latencies, generated, elapsed)


def contended(
    generate: Callable[[], int], url: str, clients: int, tokens: int, per_client: int = 2
) -> tuple[dict[str, float], dict[str, float]]:
    """One round: the in-process loop serving `clients` requests one after another, then the
    endpoint serving `per_client` x `clients` requests from `clients` concurrent clients. With few
    requests a client, the batch's fill and drain weigh on the figure (and its noise)."""
    latencies: list[float] = []
    generated = 0
    start = time.perf_counter()
    for _ in range(clients):
        t = time.perf_counter()
        generated += generate()
        latencies.append(time.perf_counter() - t)
    floor = summary(latencies, generated, time.perf_counter() - start)
    return asyncio.run(load(url, clients, per_client * clients, tokens)), floor


def overload(url: str, clients: int, per_client: int, tokens: int) -> dict[str, float]:
    """`clients` clients sending `per_client` requests each, no retries: served throughput, p95, 429 share."""
    body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": tokens, "temperature": 0}
    served: list[float] = []
    codes: list[int] = []
    generated = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal generated
        for _ in range(per_client):
            t = time.perf_counter()
            r = await http.post(f"{url}{CHAT_ROUTE}", json=body)
            codes.append(r.status_code)
            if r.status_code == 200:
                served.append(time.perf_counter() - t)
                generated += int(r.json()["usage"]["completion_tokens"])

    limits = httpx.Limits(max_connections=clients)

    async def run() -> float:
        async with httpx.AsyncClient(timeout=300, limits=limits) as http:
            start = time.perf_counter()
            await asyncio.gather(*(client(http) for _ in range(clients)))
            return time.perf_counter() - start

    elapsed = asyncio.run(run())
    out = summary(served or [0.0], generated, elapsed)
    out["shed"] = codes.count(429) / len(codes)
    out["other"] = sum(c not in (200, 429) for c in codes)
    return out


def kill_recovery(url: str, replica: dict[str, object]) -> float:
    """Seconds from kill -9 of the replica to the endpoint's first 200."""
    launch = replica["launch"]
    assert isinstance(launch, dict)
    live = read_pid_file(Path(str(launch["pid_file"])))
    assert live is not None
    body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 4}
    start = time.perf_counter()
    os.kill(live.pid, 9)
    with httpx.Client(timeout=60) as http:
        while True:
            try:
                if http.post(f"{url}{CHAT_ROUTE}", json=body).status_code == 200:
                    return time.perf_counter() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.2)


NO_OP_REPLICA = """
import sys, uvicorn
from fastapi import FastAPI
app = FastAPI()
MESSAGE = {"role": "assistant", "content": "word " * 32}
ANSWER = {"id": "x", "object": "chat.completion", "model": "m", "usage": {"completion_tokens": 32},
          "choices": [{"index": 0, "message": MESSAGE, "finish_reason": "length"}]}
@app.get("/health")
async def health(): return {"status": "ok"}
@app.post("/v1/chat/completions")
async def chat(body: dict): return ANSWER
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def front_hop(state: Path, requests: int = 300) -> tuple[float, float]:
    """p50 of a request to a replica that answers instantly, directly and through the front end:
    the front's own cost, free of generation time (and of most of the machine's noise)."""
    base = free_port_base()
    replica = spawn_detached([sys.executable, "-c", NO_OP_REPLICA, str(base)], log_path=state / "no-op.log", cwd=state)
    common = {"model": "hop", "state_dir": str(state), "base_port": base + 1, "port_span": 10, "health_timeout": 60.0}
    routes = [{"version": "v1", "weight": 100, "upstreams": [{"address": f"127.0.0.1:{base}"}]}]
    front = FrontendProvider()
    try:
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{base}/health").status_code == 200,
            ref=replica,
            timeout=60,
            log_path=state / "no-op.log",
            what="no-op replica",
        )
        fe = front.create({**common, "owner": "bench", "max_new_tokens": 32, "routes": routes})
        assert fe.outs is not None
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 32}
        times: dict[str, list[float]] = {"direct": [], "front": []}
        with httpx.Client() as http:
            for _ in range(requests):
                for name, url in (("direct", f"http://127.0.0.1:{base}"), ("front", fe.outs["url"])):
                    t = time.perf_counter()
                    http.post(f"{url}{CHAT_ROUTE}", json=body).raise_for_status()
                    times[name].append(time.perf_counter() - t)
        front.delete(fe.id, fe.outs)
    finally:
        stop(replica)
    return statistics.median(times["direct"]) * 1000, statistics.median(times["front"]) * 1000


def line(name: str, s: dict[str, float]) -> str:
    return (
        f"  {name:<28} p50 {s['p50_ms']:8.1f} ms   p95 {s['p95_ms']:8.1f} ms   "
        f"{s['tokens_per_s']:7.1f} tokens/s   ({int(s['requests'])} requests)"
    )


def serving(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        model_dir = initialised_checkpoint(ROOT, Path(tmp) / "model")
        print(f"checkpoint: tiny-chat architecture, initialised weights, {args.tokens} tokens per request")
        generate = in_process_generator(model_dir, args.tokens)

        common = {
            "model": "bench",
            "state_dir": str(Path(tmp) / "state"),
            "base_port": free_port_base(),
            "port_span": 40,
            "health_timeout": 300.0,
        }
        replica_props = one_replica(common, model_dir, concurrency=16)
        replicas, front = ReplicaSetProvider(), FrontendProvider()
        t = time.perf_counter()
        rs = replicas.create(replica_props)
        replica_start = time.perf_counter() - t
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
        t = time.perf_counter()
        fe = front.create(
            {
                **common,
                "owner": "bench",
                "max_new_tokens": args.tokens,
                "max_context": 256,
                "concurrency": 16,
                "routes": routes,
            }
        )
        front_start = time.perf_counter() - t
        assert fe.outs is not None
        print(f"replica start (to healthy and warm): {replica_start:.1f} s; front end start: {front_start:.1f} s")
        try:
            direct = f"http://{rs.outs['replicas'][0]['address']}"
            one = paired(generate, fe.outs["url"], direct, args.requests, args.tokens)
            print("1 client, interleaved:")
            for name, s in one.items():
                print(line(name, s))
            print(f"concurrent clients ({args.rounds} rounds, each beside an in-process loop of as many requests):")
            ratios: dict[int, float] = {}
            for c in (4, 16):
                rounds = [
                    contended(generate, fe.outs["url"], c, args.tokens, args.per_client) for _ in range(args.rounds)
                ]
                ratios[c] = statistics.median(e["tokens_per_s"] / f["tokens_per_s"] for e, f in rounds)
                merged = {k: statistics.median(e[k] for e, _ in rounds) for k in ("p50_ms", "p95_ms", "tokens_per_s")}
                print(line(f"endpoint, {c} clients", {**merged, "requests": sum(e["requests"] for e, _ in rounds)}))
                floor_c = statistics.median(f["tokens_per_s"] for _, f in rounds)
                print(f"    in-process loop in the same rounds: {floor_c:7.1f} tokens/s; ratio {ratios[c]:.2f}x")
            over = overload(fe.outs["url"], 64, 4, args.tokens)
            print(line("endpoint, 64 clients (served)", over))
            print(
                f"    shed with 429: {over['shed'] * 100:.0f} % of {64 * 4} requests; "
                f"other failures: {int(over['other'])}"
            )
            recovery = kill_recovery(fe.outs["url"], rs.outs["replicas"][0])
            print(f"kill -9 of the only replica: first 200 again after {recovery:.1f} s (supervisor restart)")
        finally:
            front.delete(fe.id, fe.outs)
            replicas.delete(rs.id, rs.outs)

        direct_ms, front_ms = front_hop(Path(tmp) / "hop-state")
        print(f"front end hop to a no-op replica: {direct_ms:.2f} ms direct, {front_ms:.2f} ms through the front (p50)")

        floor = one["in process"]
        overhead = one["endpoint"]["p50_ms"] / floor["p50_ms"] - 1
        front_share = one["endpoint"]["p50_ms"] / one["replica"]["p50_ms"] - 1
        speedup = ratios[16]
        print(f"endpoint vs in process at 1 client: {overhead * 100:+.1f} % p50 latency (goal < +15 %)")
        print(f"  the front end's part: {front_share * 100:+.1f} % (endpoint vs the replica directly)")
        print(
            f"endpoint at 16 clients vs the in-process loop: {speedup:.2f}x tokens/s, median of rounds "
            "(goal: keep 3.8x, the figure with `transformers serve` replicas)"
        )


CREATED = re.compile(r"pulumi-python:dynamic/(\S+) (\S+) created \((\d+(?:\.\d+)?)s\)")


def cold_up(args: argparse.Namespace) -> None:
    if args.setup:
        t = time.perf_counter()
        subprocess.run(["make", "setup"], cwd=ROOT, check=True, capture_output=True)
        print(f"make setup: {time.perf_counter() - t:.1f} s")
    with tempfile.TemporaryDirectory(prefix="bench-cold-up-") as tmp:
        project = copy_project(Path(tmp) / "project")
        stack = project.local_stack("bench-cold")
        # As `make up` runs it: under the policy pack, with the stack's enforcement levels.
        policy = subprocess.run(
            [sys.executable, "-m", "policies.enforcement", stack],
            cwd=project.root,
            env=project.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        pack = ["--policy-pack", str(project.root / "policies" / "pack"), "--policy-pack-config", policy]
        t = time.perf_counter()
        result = project.pulumi("up", "--yes", "--skip-preview", *pack, stack=stack, timeout=3600)
        total = time.perf_counter() - t
        try:
            print(f"cold `pulumi up` of the local stack: {total:.1f} s, of which (engine's resource durations):")
            for kind, name, seconds in CREATED.findall(result.stdout):
                print(f"  {kind:<22} {name:<40} {float(seconds):7.1f} s")
        finally:
            project.pulumi("destroy", "--yes", "--skip-preview", stack=stack, check=False)


def main() -> None:
    small = quick()  # quick mode: the smallest sizes, to prove the script runs
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=4 if small else 16, help="requests per measurement (at least 2x clients)"
    )
    parser.add_argument("--tokens", type=int, default=4 if small else 32, help="generated tokens per request")
    parser.add_argument(
        "--rounds", type=int, default=1 if small else 3, help="rounds per concurrency level (medians reported)"
    )
    parser.add_argument(
        "--per-client",
        type=int,
        default=2,
        help="requests per client in a concurrent round (2: the method the 3.8x reference was measured with)",
    )
    parser.add_argument("--cold-up", action="store_true", help="also time a cold `pulumi up` of a fresh copy")
    parser.add_argument("--setup", action="store_true", help="with --cold-up: time `make setup` first")
    parser.add_argument("--skip-serving", action="store_true", help="only the --cold-up measurement")
    args = parser.parse_args()
    print(f"bench_serving: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    if not args.skip_serving:
        serving(args)
    if args.cold_up:
        cold_up(args)


if __name__ == "__main__":
    main()
