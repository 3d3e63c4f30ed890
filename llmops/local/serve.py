"""The local serving front end: one OpenAI-compatible port per model in front of its replicas.

Replicas are `transformers serve` processes (transformers' own OpenAI-compatible
server, continuous batching on), one model directory each. What that runtime
lacks for an endpoint, and this front adds:

- one stable port per model, whatever the versions behind it: the routing table
  (`RoutingTable`, a JSON file the provider rewrites) lists each variant's
  version, weight and replica addresses; the front re-reads it on
  `POST /admin/reload` (loopback only) or SIGHUP and swaps it atomically, so a
  blue/green switch never drops a request (in-flight requests finish on the
  replica they started on; the old replicas drain on SIGTERM);
- traffic split by variant weight, least-busy healthy replica within a variant,
  retry on another replica when one refuses a connection;
- `/v1/models` for the serving name (the runtime lists only its hub cache) and
  `/health` that is 200 only while a healthy replica is routable;
- Prometheus `/metrics` (the project's metrics contract: requests, errors,
  latency, time to first token, generated tokens, in-flight, GPU memory);
- the serving `model` name and answering `version` on every response
  (`x-llmops-model`, `x-llmops-version` headers; `system_fingerprint`).

Streaming requests are relayed event by event, which is where the front measures
time to first token; a non-streaming request is passed through whole (the
runtime generates measurably faster without streaming), so the TTFT histogram
covers streamed requests only.

    python -m llmops.local.serve --routes ROUTES.json --port PORT
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from llmops.datasets.capture import CAPTURE_CONFIG, CaptureWriter

CHAT_ROUTE = "/v1/chat/completions"
COMPLETIONS_ROUTE = "/v1/completions"
MODELS_ROUTE = "/v1/models"
VERSION_HEADER = "x-llmops-version"
MODEL_HEADER = "x-llmops-model"
REPLICA_HEADER = "x-llmops-replica"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
# Latency buckets from a tiny CPU model (tens of ms) to a large one under load (a minute).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ATTEMPTS = 3  # replicas tried per request when one refuses the connection or fails before answering


# --------------------------------------------------------------------------- routing table


class Upstream(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str = Field(pattern=r"^[A-Za-z0-9.\-]+:\d+$", description="host:port of one replica.")
    pid: int | None = Field(default=None, description="Replica's pid, for per-process GPU memory.")


class VariantRoute(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    weight: int = Field(ge=0, le=100)
    upstreams: list[Upstream] = Field(min_length=1)


class RoutingTable(BaseModel):
    """What the front serves: written by the endpoint provider, read by the front."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, description="The serving name clients send as `model`.")
    owner: str = "llmops"
    max_new_tokens: int = Field(default=256, ge=1, description="Default and ceiling of max_tokens.")
    variants: list[VariantRoute] = Field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> RoutingTable:
        return cls.model_validate_json(path.read_text())

    def write(self, path: Path) -> None:
        """Atomically: the front may read it at any moment."""
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        tmp.write_text(self.model_dump_json(indent=2))
        tmp.replace(path)


def replica_argv(
    python: str,
    model_dir: str,
    *,
    port: int,
    device: str = "cpu",
    dtype: str = "float32",
    concurrency: int = 4,
    max_context: int = 256,
) -> list[str]:
    """The command line of one replica: `transformers serve` pinned to one model.

    Continuous batching serves concurrent requests in shared forward passes. Its KV
    cache is sized from the registry (concurrent sequences x context) rather than
    left to auto-sizing, which on a CPU-only machine claims a large share of RAM.
    """
    page = 256  # tokens per KV page: ContinuousBatchingConfig's default
    blocks = max(8, 2 * concurrency * -(-max_context // page))
    return [
        python,
        "-m",
        "transformers.cli.transformers",
        "serve",
        model_dir,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        device,
        "--dtype",
        dtype,
        "--continuous-batching",
        "--cb-num-blocks",
        str(blocks),
        "--cb-max-batch-tokens",
        str(max(256, max_context)),
        "--log-level",
        "warning",
    ]


REGISTRY_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def runtime_dtype(registry_dtype: str) -> str:
    """The registry's dtype as transformers names it; quantized types load as stored."""
    return REGISTRY_DTYPES.get(registry_dtype, "auto")


# --------------------------------------------------------------------------- metrics


class Metrics:
    """The metrics contract of the front end, in its own registry (one per app)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "llmops_requests", "Requests by route and status.", ["model", "version", "route", "code"], registry=r
        )
        self.errors = Counter(
            "llmops_request_errors", "Responses >= 500 or failed upstream.", ["model", "version", "route"], registry=r
        )
        self.duration = Histogram(
            "llmops_request_duration_seconds",
            "End-to-end request latency.",
            ["model", "version", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "llmops_time_to_first_token_seconds",
            "Time from request to the first generated token (streamed requests).",
            ["model", "version"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("llmops_generated_tokens", "Generated tokens.", ["model", "version"], registry=r)
        self.in_flight = Gauge("llmops_requests_in_flight", "Requests being served.", ["model"], registry=r)
        self.gpu_memory = Gauge(
            "llmops_gpu_memory_utilization",
            "GPU memory used by a replica, fraction of its GPU (0 on CPU).",
            ["model", "replica"],
            registry=r,
        )

    def observe(self, model: str, version: str, route: str, code: int, seconds: float) -> None:
        self.requests.labels(model, version, route, str(code)).inc()
        self.duration.labels(model, version, route).observe(seconds)
        if code >= 500:
            self.errors.labels(model, version, route).inc()


def gpu_memory_by_pid() -> dict[int, float]:
    """Each GPU process's share of its GPU's memory, from nvidia-smi ({} without NVIDIA GPUs)."""
    if shutil.which("nvidia-smi") is None:
        return {}
    try:
        totals = subprocess.run(
            ["nvidia-smi", "--query-gpu=uuid,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
        apps = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,gpu_uuid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    total = {u.strip(): float(m) for u, m in (line.split(",") for line in totals.splitlines() if "," in line)}
    out: dict[int, float] = {}
    for line in apps.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[1] in total and total[parts[1]] > 0:
            out[int(parts[0])] = out.get(int(parts[0]), 0.0) + float(parts[2]) / total[parts[1]]
    return out


# --------------------------------------------------------------------------- routing


@dataclass
class Router:
    """The current table plus what the front learned about each replica."""

    table: RoutingTable
    rng: random.Random = field(default_factory=random.Random)
    healthy: dict[str, bool] = field(default_factory=dict)
    busy: dict[str, int] = field(default_factory=dict)

    def swap(self, table: RoutingTable) -> None:
        """Replace the table in one assignment. New replicas start healthy: the provider
        lists a replica only after it answered a health check and a warm-up request."""
        addresses = {u.address for v in table.variants for u in v.upstreams}
        self.healthy = {a: self.healthy.get(a, True) for a in addresses}
        self.table = table

    def routable(self) -> list[VariantRoute]:
        return [
            v for v in self.table.variants if v.weight > 0 and any(self.healthy.get(u.address) for u in v.upstreams)
        ]

    def pick(self, exclude: Collection[str] = ()) -> tuple[VariantRoute, Upstream] | None:
        """A variant by weight among those with a usable replica, then its least-busy replica."""
        table = self.table  # one consistent snapshot for the whole decision

        def usable(v: VariantRoute) -> list[Upstream]:
            return [u for u in v.upstreams if self.healthy.get(u.address) and u.address not in exclude]

        candidates = [v for v in table.variants if v.weight > 0 and usable(v)]
        if not candidates:
            return None
        variant = self.rng.choices(candidates, weights=[v.weight for v in candidates])[0]
        upstream = min(usable(variant), key=lambda u: self.busy.get(u.address, 0))
        return variant, upstream


class UpstreamFailed(Exception):
    """The replica failed before sending a usable answer; another may be tried."""


@dataclass
class Outcome:
    """What one generation produced, collected while streaming."""

    text: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    first_token_at: float | None = None
    error: str | None = None
    chunks: int = 0


async def _sse_events(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """The JSON events of a server-sent-events stream (`data: {...}` lines)."""
    async for line in lines:
        data = line[5:].strip() if line.startswith("data:") else ""
        if not data or data == "[DONE]":
            continue
        try:
            event = json.loads(data)
        except ValueError:
            continue
        if isinstance(event, dict):
            yield event


def _content_of(event: Mapping[str, Any]) -> str | None:
    for choice in event.get("choices") or []:
        delta = choice.get("delta")
        piece = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        if piece:
            return str(piece)
    return None


def _finish_of(event: Mapping[str, Any]) -> str | None:
    for choice in event.get("choices") or []:
        if choice.get("finish_reason"):
            return str(choice["finish_reason"])
    return None


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)


# --------------------------------------------------------------------------- the app


def create_app(
    routes_path: Path | None = None,
    *,
    table: RoutingTable | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    rng: random.Random | None = None,
    health_interval: float = 1.0,
    upstream_timeout: float = 300.0,
    capture: CaptureWriter | None = None,
) -> FastAPI:
    """The front end for the table in `routes_path` (or the given `table`).

    `transport` replaces the network to the replicas (tests route it to in-process
    fake replicas); `health_interval` is how often every replica's /health is polled.
    """
    if table is None:
        if routes_path is None:
            raise ValueError("give routes_path or table")
        table = RoutingTable.load(routes_path)
    router = Router(table, rng or random.Random())
    router.swap(table)
    metrics = Metrics()
    client = httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(upstream_timeout, connect=2.0),
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
    )

    def reload() -> RoutingTable:
        if routes_path is None:
            return router.table
        router.swap(RoutingTable.load(routes_path))
        return router.table

    gauged: set[str] = set()

    async def check_replicas() -> None:
        table = router.table
        upstreams = [u for v in table.variants for u in v.upstreams]

        async def one(u: Upstream) -> tuple[str, bool]:
            try:
                r = await client.get(f"http://{u.address}/health", timeout=2.0)
                return u.address, r.status_code == 200
            except httpx.HTTPError:
                return u.address, False

        results = await asyncio.gather(*(one(u) for u in upstreams))
        for address, ok in results:
            if address in router.healthy:
                router.healthy[address] = ok
        shares = await asyncio.to_thread(gpu_memory_by_pid)
        current = {u.address for u in upstreams}
        for gone in gauged - current:  # replicas switched away from stop being reported
            with contextlib.suppress(KeyError):
                metrics.gpu_memory.remove(table.model, gone)
        gauged.intersection_update(current)
        for u in upstreams:
            share = shares.get(u.pid, 0.0) if u.pid is not None else 0.0
            metrics.gpu_memory.labels(table.model, u.address).set(share)
            gauged.add(u.address)

    async def poll() -> None:
        while True:
            with contextlib.suppress(Exception):
                await check_replicas()
            await asyncio.sleep(health_interval)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(poll())
        if routes_path is not None:
            # SIGHUP reloads too; only possible where the event loop runs in the main thread.
            with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)
        try:
            yield
        finally:
            task.cancel()
            await client.aclose()

    app = FastAPI(title="llmops local serving front end", lifespan=lifespan)
    app.state.router = router
    app.state.metrics = metrics
    app.state.check_replicas = check_replicas

    @app.get("/health")
    async def health() -> JSONResponse:
        routable = router.routable()
        body = {
            "status": "ok" if routable else "unavailable",
            "model": router.table.model,
            "versions": {v.version: v.weight for v in routable},
        }
        return JSONResponse(body, status_code=200 if routable else 503)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(MODELS_ROUTE)
    async def models() -> JSONResponse:
        start = time.perf_counter()
        t = router.table
        body = {
            "object": "list",
            "data": [
                {
                    "id": t.model,
                    "object": "model",
                    "created": 0,
                    "owned_by": t.owner,
                    "versions": [{"version": v.version, "weight": v.weight} for v in t.variants],
                }
            ],
        }
        metrics.observe(t.model, "", MODELS_ROUTE, 200, time.perf_counter() - start)
        return JSONResponse(body)

    @app.post("/admin/reload")
    async def admin_reload(request: Request) -> JSONResponse:
        if request.client is None or request.client.host not in LOOPBACK:
            return _error(403, "reload is allowed from loopback only", "permission_error")
        try:
            t = reload()
        except (OSError, ValueError) as exc:
            return _error(400, f"cannot load the routing table: {exc}")
        return JSONResponse(t.model_dump())

    async def generate(request: Request, route: str) -> Response:
        start = time.perf_counter()
        t = router.table
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError as exc:
            metrics.observe(t.model, "", route, 400, time.perf_counter() - start)
            return _error(400, f"invalid JSON body: {exc}")
        if body.get("model") not in (None, t.model):
            metrics.observe(t.model, "", route, 404, time.perf_counter() - start)
            return _error(404, f"model {body.get('model')!r} is not served here (this endpoint serves {t.model!r})")
        client_streams = bool(body.get("stream"))
        upstream_body = {k: v for k, v in body.items() if k not in ("model", "stream", "stream_options")}
        # Only a streaming client gets a stream from the replica: streaming costs the runtime
        # per-token work on its event loop (measured: 10-25 % slower generations on 2 CPUs).
        upstream_body["stream"] = client_streams
        limit_key = "max_completion_tokens" if route == CHAT_ROUTE and "max_completion_tokens" in body else "max_tokens"
        requested = body.get(limit_key)
        upstream_body.pop("max_completion_tokens", None)
        upstream_body["max_tokens"] = (
            min(int(requested), t.max_new_tokens) if isinstance(requested, int) and requested > 0 else t.max_new_tokens
        )

        metrics.in_flight.labels(t.model).inc()
        tried: set[str] = set()
        response: httpx.Response | None = None
        variant: VariantRoute | None = None
        upstream: Upstream | None = None
        failure = "no healthy replica is routable"
        while len(tried) < ATTEMPTS:
            picked = router.pick(tried)
            if picked is None:
                break
            variant, upstream = picked
            tried.add(upstream.address)
            router.busy[upstream.address] = router.busy.get(upstream.address, 0) + 1
            try:
                req = client.build_request("POST", f"http://{upstream.address}{route}", json=upstream_body)
                response = await client.send(req, stream=True)
            except httpx.TransportError as exc:
                # Refused or reset before answering: the replica is down or draining; try another.
                router.busy[upstream.address] -= 1
                router.healthy[upstream.address] = False
                failure = f"replica {upstream.address} failed: {type(exc).__name__}"
                continue
            if response.status_code >= 500:
                detail = (await response.aread()).decode(errors="replace")[:500]
                await response.aclose()
                router.busy[upstream.address] -= 1
                failure = f"replica {upstream.address} answered {response.status_code}: {detail}"
                response = None
                continue
            break

        if response is None or variant is None or upstream is None:
            metrics.in_flight.labels(t.model).dec()
            metrics.observe(t.model, "", route, 503, time.perf_counter() - start)
            return _error(503, failure, "service_unavailable")

        version, address = variant.version, upstream.address
        headers = {VERSION_HEADER: version, MODEL_HEADER: t.model, REPLICA_HEADER: address}
        fingerprint = f"{t.model}:{version}"

        def finish(code: int, outcome: Outcome | None) -> None:
            router.busy[address] = max(0, router.busy.get(address, 1) - 1)
            metrics.in_flight.labels(t.model).dec()
            if outcome is not None:
                if outcome.first_token_at is not None:
                    metrics.ttft.labels(t.model, version).observe(outcome.first_token_at - start)
                tokens = (outcome.usage or {}).get("completion_tokens")
                metrics.tokens.labels(t.model, version).inc(int(tokens) if tokens is not None else outcome.chunks)
            metrics.observe(t.model, version, route, code, time.perf_counter() - start)

        if response.status_code >= 400:  # the client's mistake, as the runtime judged it
            content = await response.aread()
            await response.aclose()
            finish(response.status_code, None)
            return Response(content, status_code=response.status_code, media_type="application/json", headers=headers)

        async def consume(on_event: Callable[[dict[str, Any]], Awaitable[None]]) -> Outcome:
            """Read the replica's stream to the end, noting TTFT, text, finish and usage."""
            outcome = Outcome()
            try:
                async for event in _sse_events(response.aiter_lines()):
                    if "error" in event and "choices" not in event:
                        outcome.error = str(event["error"])
                        break
                    piece = _content_of(event)
                    if piece is not None:
                        outcome.chunks += 1
                        outcome.text.append(piece)
                        if outcome.first_token_at is None:
                            outcome.first_token_at = time.perf_counter()
                    outcome.finish_reason = _finish_of(event) or outcome.finish_reason
                    if event.get("usage"):
                        outcome.usage = dict(event["usage"])
                    await on_event(event)
            except httpx.HTTPError as exc:
                outcome.error = f"replica {address} broke off: {type(exc).__name__}"
            finally:
                await response.aclose()
            return outcome

        if not client_streams:
            try:
                answer = json.loads(await response.aread())
                if not isinstance(answer, dict) or "choices" not in answer:
                    raise ValueError("no choices in the answer")
            except (httpx.HTTPError, ValueError) as exc:
                finish(502, None)
                return _error(502, f"replica {address} gave no usable answer: {exc}", "upstream_error")
            finally:
                await response.aclose()
            answer["model"] = t.model
            answer["system_fingerprint"] = fingerprint
            finish(200, Outcome(usage=answer.get("usage") or {}))
            if capture is not None:
                capture.offer(version, body, answer)
            return JSONResponse(answer, headers=headers)

        async def relay() -> AsyncIterator[bytes]:
            queue: asyncio.Queue[bytes | None] = asyncio.Queue()

            async def forward(event: dict[str, Any]) -> None:
                event["model"] = t.model
                event["system_fingerprint"] = fingerprint
                await queue.put(f"data: {json.dumps(event)}\n\n".encode())

            async def pump() -> Outcome:
                try:
                    return await consume(forward)
                finally:
                    await queue.put(None)

            task = asyncio.create_task(pump())
            code = 200
            try:
                while (item := await queue.get()) is not None:
                    yield item
                outcome = await task
                if outcome.error is not None:
                    code = 502
                    yield f"data: {json.dumps({'error': {'message': outcome.error}})}\n\n".encode()
                yield b"data: [DONE]\n\n"
                finish(code, outcome)
                if capture is not None and code == 200:
                    capture.offer(version, body, {"choices": [{"message": {"content": "".join(outcome.text)}}]})
            except BaseException:
                # The client went away: stop reading so the replica cancels the generation.
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                finish(499, None)
                raise

        return StreamingResponse(relay(), media_type="text/event-stream", headers=headers)

    @app.post(CHAT_ROUTE)
    async def chat_completions(request: Request) -> Response:
        return await generate(request, CHAT_ROUTE)

    @app.post(COMPLETIONS_ROUTE)
    async def completions(request: Request) -> Response:
        return await generate(request, COMPLETIONS_ROUTE)

    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmops.local.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=Path, required=True, help="routing table JSON (see RoutingTable)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--health-interval", type=float, default=1.0, help="seconds between replica health checks")
    args = parser.parse_args(argv)

    import uvicorn

    try:
        capture = CaptureWriter.from_file(args.routes.parent / CAPTURE_CONFIG)
        app = create_app(args.routes, health_interval=args.health_interval, capture=capture)
    except (OSError, ValueError) as exc:
        print(f"error: cannot load {args.routes}: {exc}", file=sys.stderr)
        return 1
    # On SIGTERM uvicorn stops accepting connections and lets in-flight requests finish.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
