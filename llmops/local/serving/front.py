"""The local serving front end: one OpenAI-compatible port per model in front of its replicas.

What it adds to the replicas, in the order a request meets it:

1. validation (`validation.py`): an oversized body is a 413, a malformed one or
   one that cannot fit the model's context (counted with the artifact's own
   tokenizer) a 400 naming the field; nothing invalid reaches a replica;
2. admission: each replica takes `concurrency` requests in flight plus a queue of
   as many again (the routing table's `admitted_per_replica`); beyond that the
   request is shed at once with 429 and `Retry-After`, never left to hang;
3. routing: a variant by weight (a blue/green or canary split; from loopback, the one
   an `x-llmops-version` request header pins), its least-busy healthy replica; a
   replica that refuses the connection or answers 5xx before generating is marked
   down and the next one is tried;
4. the exchange: passed through whole, or relayed event by event when the client
   streams (which is where time to first token is measured); a client that goes
   away cancels its generation on the replica;
5. hooks after the response is known (`Exchange`): metrics, the experiments'
   shadow mirror and inference capture (`capture`: sampled exchanges written in
   SageMaker's capture format, llmops.datasets.capture) attach the same way
   (`app.state.after_response`).

Scale to zero (`autoscale.idle_seconds`): a variant without a request for that long
has every replica stopped (parked, marked by a file beside its pid file); the next
request starts them again and waits up to `cold_start_wait` for the first healthy
one, then gets a 503 with `Retry-After`. Each tick adds each held replica's time and
busy time (a request in flight) to the cost counters, which `llmops cost --measured`
and `llmops rightsize` read.

Around the requests: every replica's /health is probed each `health_interval`
(a refusal or a non-200 takes a replica out of rotation at once, a timeout only on
the second in a row, so a replica slow on a busy CPU keeps answering); the
supervisor (`supervisor.py`) restarts one that fails `failures` probes in a row;
the routing table is re-read on `POST /admin/reload` (loopback only) or SIGHUP
and swapped atomically, so a version switch never drops a request.

    python -m llmops.local.serve --routes ROUTES.json --port PORT
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import random
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from llmops.datasets.capture import CAPTURE_CONFIG, CaptureWriter
from llmops.local.experiment_routing import FEEDBACK_ROUTE, PIN_HEADER, RESPONSE_ID_HEADER, Experiments
from llmops.local.serving.autoscale import DOWN, UP, Autoscaler, room_for
from llmops.local.serving.metrics import Metrics, gpu_memory_by_pid
from llmops.local.serving.prompts import Prompter
from llmops.local.serving.routing import Router, RoutingTable, Upstream, VariantRoute
from llmops.local.serving.supervisor import Supervisor, parked_marker, read_pid_file, spawn, terminate
from llmops.local.serving.validation import (
    ChatRequest,
    CompletionRequest,
    Generation,
    RequestError,
    check_length,
    parse,
)

log = logging.getLogger("llmops.front")

SLOW_PROBES_UNROUTABLE = 2  # health probes timed out in a row before a replica leaves rotation
CHAT_ROUTE = "/v1/chat/completions"
COMPLETIONS_ROUTE = "/v1/completions"
MODELS_ROUTE = "/v1/models"
VERSION_HEADER = "x-llmops-version"
MODEL_HEADER = "x-llmops-model"
REPLICA_HEADER = "x-llmops-replica"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
ATTEMPTS = 3  # replicas tried per request when one refuses the connection or fails before answering
RETRY_AFTER_SECONDS = 1
COLD_START_PROBE = 0.1  # seconds between health probes of a replica starting from zero
COLD_START_RETRY_AFTER = 5  # seconds a client told to come back after a cold start outran its wait


@dataclass
class Exchange:
    """One request through the front, as the hooks after the response see it."""

    route: str
    started: float
    model: str
    request: Generation | None = None
    variant: VariantRoute | None = None
    upstream: Upstream | None = None
    status: int = 0
    answer: dict[str, Any] | None = None  # the JSON answer (non-streamed requests)
    text: list[str] = field(default_factory=list)  # generated text pieces (streamed requests)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    first_token_at: float | None = None
    chunks: int = 0
    error: str | None = None
    sent: dict[str, Any] | None = None  # the body the replica got (mirrored to a shadow as is)

    @property
    def cost(self) -> int:
        """Sequences the request occupies on its replica: one per choice (and per prompt)."""
        if self.request is None:
            return 1
        prompts = len(self.request.prompts()) if isinstance(self.request, CompletionRequest) else 1
        return self.request.n * prompts

    @property
    def version(self) -> str:
        return self.variant.version if self.variant is not None else ""


AfterResponse = Callable[[Exchange], None]


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


def _content_of(event: dict[str, Any]) -> str | None:
    for choice in event.get("choices") or []:
        delta = choice.get("delta")
        piece = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        if piece:
            return str(piece)
    return None


def _finish_of(event: dict[str, Any]) -> str | None:
    for choice in event.get("choices") or []:
        if choice.get("finish_reason"):
            return str(choice["finish_reason"])
    return None


def _error(status: int, message: str, kind: str = "invalid_request_error", **headers: str) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers or None)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 once it exceeds `limit` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the request body is {declared} bytes; this endpoint takes at most {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _client_gone(request: Request) -> None:
    """Returns once the client disconnects (the body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def create_app(
    routes_path: Path | None = None,
    *,
    table: RoutingTable | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    rng: random.Random | None = None,
    health_interval: float = 1.0,
    upstream_timeout: float = 300.0,
    supervisor: Supervisor | None = None,
    prompter: Callable[[str], Prompter] = Prompter.load,
    capture: CaptureWriter | None = None,
) -> FastAPI:
    """The front end for the table in `routes_path` (or the given `table`).

    `transport` replaces the network to the replicas (tests route it to in-process
    fake replicas); `health_interval` is how often every replica's /health is polled;
    `prompter` loads a variant's tokenizer for counting prompt tokens; `capture`
    is offered every answered exchange.
    """
    if table is None:
        if routes_path is None:
            raise ValueError("give routes_path or table")
        table = RoutingTable.load(routes_path)
    router = Router(table, rng or random.Random())
    router.swap(table)
    metrics = Metrics()
    supervisor = supervisor or Supervisor()
    supervisor.on_restart = lambda u: metrics.restarts.labels(router.table.model, u.address).inc()
    # Keep-alive connections to the replicas: a new TCP connection per request costs a round trip.
    client = httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(upstream_timeout, connect=2.0),
        limits=httpx.Limits(max_connections=512, max_keepalive_connections=256),
    )
    after_response: list[AfterResponse] = []
    experiments = Experiments(table.model, metrics.registry)

    def adopt_spares(t: RoutingTable) -> None:
        """Standby replicas found running (started before this front restarted) are routed to again."""
        for v in t.variants:
            for u in v.spares:
                live = read_pid_file(Path(u.launch.pid_file)) if u.launch is not None else None
                if live is not None and live.running() and u.address not in router.active:
                    router.start_spare(u.address)

    def adopt_parked(t: RoutingTable) -> None:
        """Replicas parked before this front (re)started stay parked; a marker gone means started again."""
        marked = {
            u.address
            for v in t.variants
            for u in v.upstreams
            if u.launch is not None and parked_marker(u.launch).exists()
        }
        for address in router.parked - marked:
            router.unpark(address)
        for address in marked - router.parked:
            router.park(address)

    adopt_spares(router.table)
    adopt_parked(router.table)
    started_at = time.monotonic()
    draining: dict[str, Upstream] = {}
    waking: dict[str, asyncio.Task[None]] = {}

    async def autoscale(t: RoutingTable) -> None:
        if t.autoscale is None:
            return
        scaler = app.state.autoscaler
        if scaler is None or scaler.policy != t.autoscale:
            scaler = app.state.autoscaler = Autoscaler(t.autoscale)
        for v in t.variants:
            members = router.members(v)
            in_flight = sum(router.busy.get(u.address, 0) for u in members)
            standby = [u for u in v.spares if u.address not in router.active and u.address not in draining]
            started = [u for u in v.spares if u.address in router.active]
            step = scaler.decide(v.version, in_flight, len(members), len(standby), len(started), time.monotonic())
            launch = standby[0].launch if standby else None
            if step == UP and launch is not None:
                why = await asyncio.to_thread(room_for, t.autoscale.replica_memory_gib)
                if why is not None:
                    metrics.autoscale_blocked.labels(t.model, v.version).inc()
                    log.warning("%s %s: no scale-up: %s", t.model, v.version, why)
                    continue
                router.start_spare(standby[0].address)
                supervisor.started(standby[0])
                await asyncio.to_thread(spawn, launch)
            elif step == DOWN:
                spare = started[-1]
                router.stop_spare(spare.address)  # no new requests; those in flight finish
                draining[spare.address] = spare
            elif idle(t, v, in_flight, started):
                await park(v)
        for address, spare in list(draining.items()):
            if router.busy.get(address, 0) == 0 and spare.launch is not None:
                del draining[address]
                await asyncio.to_thread(terminate, read_pid_file(Path(spare.launch.pid_file)))

    def idle(t: RoutingTable, v: VariantRoute, in_flight: int, started: list[Upstream]) -> bool:
        """Scale to zero is due: nothing in flight, no spare running, no request for `idle_seconds`."""
        limit = t.autoscale.idle_seconds if t.autoscale is not None else None
        if limit is None or in_flight or started or v.version in waking:
            return False
        held = [u for u in v.upstreams if u.launch is not None and u.address not in router.parked]
        return bool(held) and time.monotonic() - router.idle_since(v, started_at) >= limit

    async def park(v: VariantRoute) -> None:
        for u in v.upstreams:
            if u.launch is None or u.address in router.parked:
                continue
            router.park(u.address)
            parked_marker(u.launch).write_text(f"{time.time():.3f}\n")  # before the stop: never read as a crash
            await asyncio.to_thread(terminate, read_pid_file(Path(u.launch.pid_file)))
        log.warning("%s %s: idle, scaled to zero", router.table.model, v.version)

    async def wake(t: RoutingTable, v: VariantRoute) -> None:
        """Start a parked variant's replicas; routable as soon as one answers /health."""
        began = time.perf_counter()
        woken = [u for u in v.upstreams if u.address in router.parked and u.launch is not None]
        for u in woken:
            assert u.launch is not None
            router.unpark(u.address)
            supervisor.started(u)  # the supervisor gives it its start-up backoff
            await asyncio.to_thread(spawn, u.launch)
        pending = {u.address for u in woken}
        # Past the wait the health ticks take over (and the supervisor, should it never come up).
        deadline = time.monotonic() + (t.autoscale.cold_start_wait if t.autoscale is not None else 60.0)
        while pending and time.monotonic() < deadline:
            for address in list(pending):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://{address}/health", timeout=1.0)).status_code == 200:
                        router.healthy[address] = True
            if any(router.healthy.get(a) for a in pending):
                metrics.cold_start.labels(t.model, v.version).observe(time.perf_counter() - began)
                log.warning("%s %s: cold start took %.1f s", t.model, v.version, time.perf_counter() - began)
                return
            await asyncio.sleep(COLD_START_PROBE)

    def forget_wake(version: str, _task: asyncio.Task[None]) -> None:
        waking.pop(version, None)

    async def cold_start(t: RoutingTable) -> bool:
        """Wake every parked variant with traffic; True once one is routable within `cold_start_wait`."""
        parked = [v for v in t.variants if v.weight > 0 and any(u.address in router.parked for u in v.upstreams)]
        if not (parked or waking) or t.autoscale is None:
            return False  # requests during a wake wait for it too
        for v in parked:
            if v.version not in waking:
                task = asyncio.create_task(wake(t, v))
                waking[v.version] = task
                task.add_done_callback(functools.partial(forget_wake, v.version))
        deadline = time.monotonic() + t.autoscale.cold_start_wait
        while time.monotonic() < deadline:
            if router.routable():
                return True
            await asyncio.sleep(COLD_START_PROBE / 2)
        return False

    def load_tokenizers(t: RoutingTable) -> None:
        for v in t.variants:
            if v.tokenizer is not None:
                prompter(v.tokenizer)

    def reload() -> RoutingTable:
        if routes_path is None:
            return router.table
        t = RoutingTable.load(routes_path)
        load_tokenizers(t)  # before the swap: a bad artifact fails the reload, not the requests
        router.swap(t)
        adopt_spares(t)
        adopt_parked(t)
        return router.table

    gauged: set[str] = set()
    slow_probes: dict[str, int] = {}  # replica -> health probes in a row that timed out
    counted: dict[str, tuple[float, float]] = {}  # replica -> (clock, busy seconds) at its last tick

    def count_time(table: RoutingTable) -> None:
        """Add each held replica's time and busy time since the last tick to the cost counters."""
        now = time.monotonic()
        for v in table.variants:
            for u in router.members(v):
                if u.address in router.parked:
                    counted.pop(u.address, None)
                    continue
                busy = router.busy_seconds(u.address)
                last = counted.get(u.address)
                counted[u.address] = (now, busy)
                if last is not None:
                    metrics.replica_up.labels(table.model, v.version, u.address).inc(now - last[0])
                    metrics.replica_busy.labels(table.model, v.version, u.address).inc(max(0.0, busy - last[1]))
                else:  # its first tick: nothing to add yet, but the series exists from now on
                    metrics.replica_up.labels(table.model, v.version, u.address).inc(0)
                    metrics.replica_busy.labels(table.model, v.version, u.address).inc(0)
            parked = sum(u.address in router.parked for u in v.upstreams)
            metrics.parked.labels(table.model, v.version).set(parked)
            # Series exist from the start: no tokens served reads as 0, not as unmeasured.
            metrics.declare(table.model, v.version, (CHAT_ROUTE, COMPLETIONS_ROUTE))

    async def check_replicas() -> None:
        table = router.table
        count_time(table)
        upstreams = [u for v in table.variants for u in router.members(v) if u.address not in router.parked]

        async def one(u: Upstream) -> tuple[Upstream, bool, bool]:
            """(replica, answered 200, only slow): a probe that timed out is told apart from a refusal."""
            try:
                r = await client.get(f"http://{u.address}/health", timeout=min(2.0, max(0.5, health_interval)))
                return u, r.status_code == 200, False
            except httpx.TimeoutException:
                return u, False, True
            except httpx.HTTPError:
                return u, False, False

        results = await asyncio.gather(*(one(u) for u in upstreams))
        for gone in set(slow_probes) - {u.address for u in upstreams}:
            del slow_probes[gone]
        for u, ok, slow in results:
            slow_probes[u.address] = slow_probes.get(u.address, 0) + 1 if slow else 0
            if u.address in router.healthy and not (slow and slow_probes[u.address] < SLOW_PROBES_UNROUTABLE):
                # A replica busy on a starved CPU may miss one probe's deadline while it still
                # answers requests: one slow probe keeps its state, a second in a row takes it out
                # of rotation (a readiness failure threshold). A refusal or a non-200 does at once.
                router.healthy[u.address] = ok
            # Restarting waits for the old process to die: off the event loop.
            await asyncio.to_thread(supervisor.observe, u, ok)
        supervisor.forget({u.address for u in upstreams})
        await autoscale(table)
        for v in table.variants:
            healthy = sum(bool(router.healthy.get(u.address)) for u in router.members(v))
            metrics.replicas.labels(table.model, v.version).set(healthy)
        shares = await asyncio.to_thread(gpu_memory_by_pid)
        current = {u.address for u in upstreams}
        for gone in gauged - current:  # replicas switched away from stop being reported
            with contextlib.suppress(KeyError):
                metrics.gpu_memory.remove(table.model, gone)
        gauged.intersection_update(current)
        for u in upstreams:
            live = read_pid_file(Path(u.launch.pid_file)) if u.launch is not None else None
            pid = live.pid if live is not None else u.pid  # restarted replicas have a new pid
            share = shares.get(pid, 0.0) if pid is not None else 0.0
            metrics.gpu_memory.labels(table.model, u.address).set(share)
            gauged.add(u.address)

    async def poll() -> None:
        while True:
            with contextlib.suppress(Exception):
                await check_replicas()
            await asyncio.sleep(health_interval)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(load_tokenizers, router.table)
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
    app.state.supervisor = supervisor
    app.state.check_replicas = check_replicas
    app.state.autoscaler = None
    app.state.after_response = after_response

    def record(x: Exchange) -> None:
        """The metrics contract; the first hook after every response."""
        if x.first_token_at is not None:
            metrics.ttft.labels(x.model, x.version).observe(x.first_token_at - x.started)
        if x.variant is not None and x.status == 200:
            tokens = (x.usage or {}).get("completion_tokens")
            completion = int(tokens) if tokens is not None else x.chunks
            metrics.tokens.labels(x.model, x.version).inc(completion)
            metrics.completion_tokens.labels(x.model, x.version).inc(completion)
            prompt = (x.usage or {}).get("prompt_tokens")
            if prompt is not None:
                metrics.prompt_tokens.labels(x.model, x.version).inc(int(prompt))
        metrics.observe(x.model, x.version, x.route, x.status, time.perf_counter() - x.started)

    after_response.append(record)

    def mirror(x: Exchange) -> None:
        """After the live answer, so a shadow never slows it."""
        if x.sent is not None:
            experiments.mirror(router.table.shadow, client, x.route, x.sent)

    after_response.append(mirror)
    if capture is not None:
        after_response.append(lambda x: _capture(capture, x))
    app.state.experiments = experiments

    @app.post(FEEDBACK_ROUTE)
    async def feedback(request: Request) -> JSONResponse:
        try:
            raw = await _read_body(request, router.table.max_body_bytes)
        except RequestError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        status, body = experiments.rate(raw)
        return JSONResponse(body, status_code=status)

    def done(x: Exchange, status: int) -> None:
        x.status = status
        for hook in after_response:
            with contextlib.suppress(Exception):  # a failing hook must not fail the request
                hook(x)

    @app.get("/health")
    async def health() -> JSONResponse:
        routable = router.routable()
        # Scaled to zero is healthy: the next request starts it.
        asleep = [v for v in router.table.variants if v.weight > 0 and router.parked & {u.address for u in v.upstreams}]
        body = {
            "status": "ok" if routable else "idle" if asleep else "unavailable",
            "model": router.table.model,
            "versions": {v.version: v.weight for v in routable},
        }
        return JSONResponse(body, status_code=200 if routable or asleep else 503)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        metrics.set_route_weights(router.table.model, router.route_weights())
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

    def validate(t: RoutingTable, raw: bytes, kind: type[ChatRequest] | type[CompletionRequest]) -> Generation:
        body = parse(raw, kind)
        if body.model not in (None, t.model):
            raise RequestError(
                404, f"model {body.model!r} is not served here (this endpoint serves {t.model!r})", "model"
            )
        return body

    def upstream_body(raw: bytes, x: Exchange, variant: VariantRoute, t: RoutingTable) -> dict[str, Any]:
        """What the replica gets: the client's body, capped to the registry and the context."""
        assert x.request is not None
        body = {k: v for k, v in json.loads(raw).items() if k not in ("model", "max_completion_tokens")}
        if variant.tokenizer is not None and t.max_context is not None:
            count = prompter(variant.tokenizer).count
            body["max_tokens"] = check_length(
                x.request, count, max_context=t.max_context, max_new_tokens=t.max_new_tokens
            )
        else:
            requested = x.request.requested_tokens()
            body["max_tokens"] = min(requested, t.max_new_tokens) if requested is not None else t.max_new_tokens
        if x.request.stream:  # the usage event counts tokens; relayed only to a client that asked for it
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return body

    async def generate(request: Request, route: str, kind: type[ChatRequest] | type[CompletionRequest]) -> Response:
        t = router.table
        x = Exchange(route=route, started=time.perf_counter(), model=t.model)
        try:
            raw = await _read_body(request, t.max_body_bytes)
            x.request = validate(t, raw, kind)
        except RequestError as exc:
            done(x, exc.status)
            return JSONResponse(exc.body(), status_code=exc.status)

        metrics.in_flight.labels(t.model).inc()
        try:
            return await forward(request, x, t, raw)
        finally:
            if not (x.request.stream and x.status == 0):  # a relayed stream ends in its own generator
                metrics.in_flight.labels(t.model).dec()

    async def forward(request: Request, x: Exchange, t: RoutingTable, raw: bytes) -> Response:
        assert x.request is not None
        tried: set[str] = set()
        response: httpx.Response | None = None
        failure, shed = "no healthy replica is routable", False
        key = experiments.key_of({"user": x.request.user}, request.headers)
        pin = request.headers.get(PIN_HEADER)
        if pin is not None:
            refused = _refuse_pin(request, t, pin)
            if refused is not None:
                done(x, refused.status_code)
                return refused
        while len(tried) < ATTEMPTS:
            picked = router.pick(tried, key, pin)
            if picked is None and not tried and (router.parked or waking):
                if not await cold_start(t):
                    done(x, 503)
                    message = f"{t.model} is starting from zero replicas; retry shortly"
                    retry = {"Retry-After": str(COLD_START_RETRY_AFTER)}
                    return _error(503, message, "service_unavailable", **retry)
                picked = router.pick(tried, key, pin)
            if picked is None:
                break
            variant, upstream = picked
            if router.full(upstream, x.cost):
                # Least-busy is full: every usable replica is. Shed now rather than queue without bound.
                shed = True
                break
            try:
                body = upstream_body(raw, x, variant, t)
            except RequestError as exc:
                done(x, exc.status)
                return JSONResponse(exc.body(), status_code=exc.status)
            tried.add(upstream.address)
            router.acquire(upstream.address, x.cost)
            try:
                req = client.build_request("POST", f"http://{upstream.address}{x.route}", json=body)
                # A whole answer is read here, so a replica that dies mid-answer is retried like one that refused.
                response = await _unless_gone(request, client.send(req, stream=x.request.stream))
            except httpx.TransportError as exc:
                # Refused, reset or broken off before the client got anything: the replica is down; try another.
                router.release(upstream.address, x.cost)
                router.healthy[upstream.address] = False
                failure = f"replica {upstream.address} failed: {type(exc).__name__}"
                continue
            except ClientGone:
                router.release(upstream.address, x.cost)
                done(x, 499)
                return Response(status_code=499)
            except BaseException:  # cancelled (the server shuts down, or the client's task was cancelled)
                router.release(upstream.address, x.cost)
                raise
            if response.status_code >= 500:
                detail = (await response.aread()).decode(errors="replace")[:500]
                await response.aclose()
                router.release(upstream.address, x.cost)
                if response.status_code == 503:
                    router.healthy[upstream.address] = False
                failure = f"replica {upstream.address} answered {response.status_code}: {detail}"
                response = None
                continue
            x.variant, x.upstream, x.sent = variant, upstream, body
            break

        if response is None or x.variant is None or x.upstream is None:
            if shed:
                done(x, 429)
                message = f"all replicas of {t.model} are at capacity ({t.admitted_per_replica} requests each); retry"
                return _error(429, message, "rate_limit_error", **{"Retry-After": str(RETRY_AFTER_SECONDS)})
            done(x, 503)
            if pin is not None and failure == "no healthy replica is routable":
                failure = f"no healthy replica of {t.model} {pin} is routable"
            return _error(503, failure, "service_unavailable")
        return await answer(request, x, t, response)

    async def answer(request: Request, x: Exchange, t: RoutingTable, response: httpx.Response) -> Response:
        assert x.request is not None and x.variant is not None and x.upstream is not None
        address = x.upstream.address
        headers = {VERSION_HEADER: x.version, MODEL_HEADER: t.model, REPLICA_HEADER: address}
        fingerprint = f"{t.model}:{x.version}"
        response_id = experiments.new_response(x.version)  # what /v1/feedback rates
        if response_id:
            headers[RESPONSE_ID_HEADER] = response_id

        if response.status_code >= 400 or not x.request.stream:
            try:
                content = await _unless_gone(request, response.aread())
            except ClientGone:
                done(x, 499)
                return Response(status_code=499)
            except httpx.HTTPError as exc:
                done(x, 502)
                return _error(502, f"replica {address} broke off: {type(exc).__name__}", "upstream_error")
            finally:
                await response.aclose()
                router.release(address, x.cost)
            if response.status_code >= 400:  # the client's mistake, as the replica judged it
                done(x, response.status_code)
                return Response(
                    content, status_code=response.status_code, media_type="application/json", headers=headers
                )
            try:
                reply = json.loads(content)
                if not isinstance(reply, dict) or "choices" not in reply:
                    raise ValueError("no choices in the answer")
            except ValueError as exc:
                done(x, 502)
                return _error(502, f"replica {address} gave no usable answer: {exc}", "upstream_error")
            reply["model"] = t.model
            reply["system_fingerprint"] = fingerprint
            if response_id:
                reply["id"] = response_id
            x.answer, x.usage = reply, reply.get("usage") or {}
            done(x, 200)
            return JSONResponse(reply, headers=headers)

        wants_usage = bool(getattr(x.request.stream_options, "include_usage", False))

        async def relay() -> AsyncIterator[bytes]:
            status = 200
            try:
                async for event in _sse_events(response.aiter_lines()):
                    if event.get("usage") and not event.get("choices") and not wants_usage:
                        x.usage = dict(event["usage"])  # asked for by the front, not by the client
                        continue
                    if "error" in event and "choices" not in event:
                        x.error, status = str(event["error"]), 502
                        yield f"data: {json.dumps(event)}\n\n".encode()
                        break
                    piece = _content_of(event)
                    if piece is not None:
                        x.chunks += 1
                        x.text.append(piece)
                        if x.first_token_at is None:
                            x.first_token_at = time.perf_counter()
                    x.finish_reason = _finish_of(event) or x.finish_reason
                    if event.get("usage"):
                        x.usage = dict(event["usage"])
                    event["model"] = t.model
                    event["system_fingerprint"] = fingerprint
                    if response_id:
                        event["id"] = response_id
                    yield f"data: {json.dumps(event)}\n\n".encode()
                yield b"data: [DONE]\n\n"
            except httpx.HTTPError as exc:
                x.error, status = f"replica {address} broke off: {type(exc).__name__}", 502
                yield f"data: {json.dumps({'error': {'message': x.error}})}\n\n".encode()
            except BaseException:
                status = 499  # the client went away: closing the upstream stream cancels the generation
                raise
            finally:
                await response.aclose()
                router.release(address, x.cost)
                metrics.in_flight.labels(t.model).dec()
                done(x, status)

        return StreamingResponse(relay(), media_type="text/event-stream", headers=headers)

    @app.post(CHAT_ROUTE)
    async def chat_completions(request: Request) -> Response:
        return await generate(request, CHAT_ROUTE, ChatRequest)

    @app.post(COMPLETIONS_ROUTE)
    async def completions(request: Request) -> Response:
        return await generate(request, COMPLETIONS_ROUTE, CompletionRequest)

    return app


def _refuse_pin(request: Request, t: RoutingTable, version: str) -> JSONResponse | None:
    """Why a pinned request is refused, or None. Pinning bypasses the committed split, so it is for
    operators on this machine (`llmops experiment smoke`), never for clients from elsewhere."""
    if request.client is None or request.client.host not in LOOPBACK:
        return _error(403, f"{PIN_HEADER} is accepted from loopback only", "permission_error")
    versions = [v.version for v in t.variants]
    if version not in versions:
        served = ", ".join(versions) or "none"
        return _error(404, f"{PIN_HEADER}: {t.model} has no version {version!r} here (serves: {served})")
    return None


def _capture(capture: CaptureWriter, x: Exchange) -> None:
    """Offer an answered exchange: what the replica was sent, and what it answered (streamed text joined)."""
    if x.status != 200 or x.sent is None:
        return
    answer = x.answer
    if answer is None:
        text = "".join(x.text)
        answer = {"choices": [{"message": {"content": text}} if x.route == CHAT_ROUTE else {"text": text}]}
    capture.offer(x.version, x.sent, answer)


class ClientGone(Exception):
    """The client disconnected while the front waited on its replica."""


async def _unless_gone(request: Request, work: Awaitable[Any]) -> Any:
    """`work`, unless the client disconnects first: then `work` is cancelled (closing the
    connection to the replica, which cancels the generation there) and ClientGone raised."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_client_gone(request))
    try:
        finished, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if task in finished:
        return task.result()
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    raise ClientGone


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmops.local.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=Path, required=True, help="routing table JSON (see RoutingTable)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--health-interval", type=float, default=1.0, help="seconds between replica health checks")
    parser.add_argument("--failures", type=int, default=3, help="failed health checks in a row that restart a replica")
    args = parser.parse_args(argv)

    import uvicorn

    try:
        app = create_app(
            args.routes,
            health_interval=args.health_interval,
            supervisor=Supervisor(failures=args.failures),
            capture=CaptureWriter.from_file(args.routes.parent / CAPTURE_CONFIG),
        )
    except (OSError, ValueError) as exc:
        print(f"error: cannot load {args.routes}: {exc}", file=sys.stderr)
        return 1
    # On SIGTERM uvicorn stops accepting connections and lets in-flight requests finish.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=60)
    return 0
