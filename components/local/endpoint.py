"""The local model endpoint: replica processes per model version behind one front port.

Two dynamic resources make Pulumi itself run the blue/green rollout:

- `LocalReplicaSet` (one per model *version*; the version is in its name): starts
  `min_replicas` detached replica processes (`llmops.local.serving.replica`) on ports
  of the stack's range and returns only once each answered /health and a warm-up
  generation.
  If they do not within `health_timeout`, it stops them and fails with the log
  tail, so `up` fails and nothing else changes.
- `LocalFrontend` (one per model): the front process (`llmops.local.serve`) on a
  port kept for the model across updates, under a keeper that restarts it if it
  dies (the provider's pid is the keeper's); its input is the routing table
  (versions, weights, replica addresses), swapped in place on update.

A version bump is then: create the new replica set, update the front's table
(atomic switch), delete the old replica set (SIGTERM: it drains in-flight
requests first) — the engine's order for a new resource, its dependents and a
removed one. A new artifact for the same version replaces the replica set the
same way (create before delete). `refresh` reads whether each process is alive
and healthy (`running`); a dead or unhealthy one makes the next `up` update the
resource, which restarts it on its port. Diff looks at the processes too, so after
a reboot `up` alone restarts everything.

Between deploys the front's supervisor restarts a replica that fails its health
checks, from the recipe (`Launch`) each replica's route carries; the replica's pid
file (JSON: pid and start time) names the live process, so the provider always
reads, stops and restarts the process that actually serves.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from components.contracts import ModelEndpointArgs, ModelEndpointOutputs
from components.local.capture import write_capture_config
from components.local.port_server import PORT_SPAN, SERVER_OUTPUTS, PortServerProvider, child_env, progress, stack_ports
from components.local.port_server import launch as launch_server
from components.local.process import (
    ProcessRef,
    StartError,
    is_running,
    port_open,
    spawn_detached,
    stop,
    wait_until,
)
from llmops.datasets.capture import capture_settings
from llmops.local.experiment_routing import ShadowRoute
from llmops.local.serve import Autoscale, Launch, RoutingTable, Upstream, VariantRoute, replica_argv, runtime_dtype
from llmops.local.serving.supervisor import Live, parked_marker, read_pid_file, write_pid_file
from llmops.local.store import STORE_DIR, ArtifactStore
from llmops.registry import TRAINING_OUTPUT, WeightsSource


def _replica(record: dict[str, Any]) -> dict[str, Any]:
    """A replica record as stored, with the integers the engine's state hands back as floats made ints again."""
    return {**record, **{k: int(record[k]) for k in ("index", "port", "pid") if k in record}}


def _live(record: dict[str, Any]) -> ProcessRef:
    """The process serving a replica now: its pid file's (the supervisor may have restarted it), else the record's."""
    live = read_pid_file(Path(record["launch"]["pid_file"])) if record.get("launch") else None
    return ProcessRef(live.pid, live.started) if live is not None else ProcessRef.from_dict(record)


def _parked(record: dict[str, Any]) -> bool:
    """Stopped by the front's scale to zero: the state wanted, not a failure."""
    return bool(record.get("launch")) and parked_marker(Launch.model_validate(record["launch"])).exists()


def _healthy(record: dict[str, Any]) -> bool:
    """Alive, listening and answering /health 200: a process that is up but sick is not running."""
    if not (is_running(_live(record)) and port_open(int(record["port"]))):
        return False
    try:
        return httpx.get(f"http://{record['address']}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


# --------------------------------------------------------------------------- replica sets

# Inputs whose change needs new processes: handled as replace (create the new set first).
_REPLICA_REPLACES = ("model", "version", "model_source", "device", "dtype", "concurrency", "max_context", "state_dir")


class ReplicaSetProvider(ResourceProvider):
    """`min_replicas` replica processes of one model version."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        if int(news.get("count", 0)) < 1:
            failures.append(CheckFailure("count", "at least one replica is needed"))
        if float(news.get("health_timeout", 0)) <= 0:
            failures.append(CheckFailure("health_timeout", "must be positive seconds"))
        return CheckResult(news, failures)

    def _dir(self, props: dict[str, Any], rid: str) -> Path:
        return Path(props["state_dir"]) / "endpoints" / props["model"] / props["version"] / rid

    def _recipe(self, props: dict[str, Any], rid: str, index: int) -> dict[str, Any]:
        """Port and command line of replica `index`, not started (what a standby replica is)."""
        folder = self._dir(props, rid)
        port = stack_ports(props).allocate(f"replica/{rid}/{index}")
        log = folder / f"replica-{index}.log"
        argv = replica_argv(
            sys.executable,
            props["model_source"],
            port=port,
            device=props["device"],
            dtype=props["dtype"],
            concurrency=int(props["concurrency"]),
            max_context=int(props["max_context"]),
        )
        # Half the CPUs shared among the set's replicas, the rest for the front end and tokenising:
        # on 2 CPUs one torch thread serves a small model faster than two (measured: 87 vs 102 ms p50
        # for 32 tokens, 2688 vs 2291 tokens/s at 16 clients).
        threads = os.environ.get("OMP_NUM_THREADS") or str(
            max(1, len(os.sched_getaffinity(0)) // (2 * int(props["count"])))
        )
        pid_file = folder / f"replica-{index}.pid"
        launch = Launch(
            argv=argv, cwd=str(folder), log=str(log), pid_file=str(pid_file), env={"OMP_NUM_THREADS": threads}
        )
        return {
            "index": index,
            "port": port,
            "address": f"127.0.0.1:{port}",
            "log": str(log),
            "launch": launch.model_dump(),
        }

    def _start(self, props: dict[str, Any], rid: str, index: int) -> dict[str, Any]:
        recipe = self._recipe(props, rid, index)
        launch = Launch.model_validate(recipe["launch"])
        ref = spawn_detached(
            launch.argv, log_path=Path(launch.log), cwd=Path(launch.cwd), env={**child_env(), **launch.env}
        )
        write_pid_file(Path(launch.pid_file), Live(ref.pid, ref.started))
        parked_marker(launch).unlink(missing_ok=True)  # started by a deploy: no longer parked
        return {**recipe, **ref.to_dict()}

    def _spares(self, props: dict[str, Any], rid: str) -> list[dict[str, Any]]:
        """Standby replicas up to `max_count`: the front's autoscaler starts and stops them, so the live
        count never enters the state (as `ignoreChanges` keeps an HPA's replica count out of a diff)."""
        return [self._recipe(props, rid, i) for i in range(int(props["count"]), int(props.get("max_count") or 0))]

    def _stop_spares(self, props: dict[str, Any], rid: str, news: dict[str, Any] | None = None) -> None:
        """Stop standby replicas the autoscaler may have started: all, or those `news` no longer keeps as spares."""
        count, top = (int(news["count"]), int(news.get("max_count") or 0)) if news else (0, 0)
        for spare in props.get("spares") or []:
            if not count <= int(spare["index"]) < top:
                self._stop(props, rid, {**_replica(spare), "pid": 0, "started": 0})

    def _wait(self, props: dict[str, Any], replicas: list[dict[str, Any]]) -> None:
        """Every replica answers /health and one generated token (which also warms it up)."""
        deadline = time.monotonic() + float(props["health_timeout"])
        for r in replicas:
            base = f"http://{r['address']}"

            def ready(base: str = base) -> bool:
                if httpx.get(f"{base}/health", timeout=2).status_code != 200:
                    return False
                warm = httpx.post(f"{base}/v1/completions", json={"prompt": "Hello", "max_tokens": 1}, timeout=60)
                return warm.status_code == 200

            wait_until(
                ready,
                ref=_live(r),
                timeout=max(1.0, deadline - time.monotonic()),
                log_path=Path(r["log"]),
                what=f"{props['model']} {props['version']} replica {r['index']} (port {r['port']})",
                interval=0.5,
            )
            progress(f"{props['model']} {props['version']}: replica {r['index']} healthy on port {r['port']}")

    def _stop(self, props: dict[str, Any], rid: str, replica: dict[str, Any]) -> None:
        stop(_live(replica))
        if replica.get("pid") and _live(replica) != ProcessRef.from_dict(replica):
            stop(ProcessRef.from_dict(replica), grace=5)
        stack_ports(props).release(f"replica/{rid}/{replica['index']}")
        Path(self._dir(props, rid) / f"replica-{replica['index']}.pid").unlink(missing_ok=True)

    def _outs(self, props: dict[str, Any], rid: str, replicas: list[dict[str, Any]]) -> dict[str, Any]:
        spares = self._spares(props, rid)
        return {
            **props,
            "rid": rid,
            "dir": str(self._dir(props, rid)),
            "replicas": replicas,
            "spares": spares,
            "running": True,
        }

    def create(self, props: dict[str, Any]) -> CreateResult:
        rid = f"{props['model']}-{props['version']}-{uuid.uuid4().hex[:8]}"
        self._dir(props, rid).mkdir(parents=True, exist_ok=True)
        progress(
            f"{props['model']} {props['version']}: starting {int(props['count'])} replica(s) of {props['model_source']}"
        )
        replicas: list[dict[str, Any]] = []
        try:
            for i in range(int(props["count"])):
                replicas.append(self._start(props, rid, i))
            self._wait(props, replicas)
        except BaseException:
            # Leave nothing running: the engine records no resource for a failed create.
            for r in replicas:
                self._stop(props, rid, r)
            raise
        return CreateResult(rid, self._outs(props, rid, replicas))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        may_park = props.get("idle_seconds") is not None
        replicas = [
            {**r, "running": _healthy(r) or (may_park and _parked(r))}
            for r in map(_replica, props.get("replicas") or [])
        ]
        running = bool(replicas) and all(r["running"] for r in replicas)
        return ReadResult(id_, {**props, "replicas": replicas, "running": running})

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in _REPLICA_REPLACES if k in news and olds.get(k) != news.get(k)]
        changed = [k for k in ("count", "max_count", "health_timeout", "idle_seconds") if olds.get(k) != news.get(k)]
        # Besides a refresh's verdict, look at the processes now: after a reboot `up` alone restarts them.
        dead = olds.get("running") is False or not self.read(id_, olds).outs["running"]
        return DiffResult(changes=bool(replaces or changed or dead), replaces=replaces, delete_before_replace=False)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Restart replicas that died (on their own ports) and scale to `count`."""
        rid = olds["rid"]
        self._stop_spares(olds, rid, news)
        keep: list[dict[str, Any]] = []
        started: list[dict[str, Any]] = []
        for r in map(_replica, olds.get("replicas") or []):
            if r["index"] >= int(news["count"]):
                self._stop(olds, rid, r)
            elif _healthy(r):
                live = _live(r)  # perhaps restarted by the supervisor since the last deploy
                keep.append({**{k: v for k, v in r.items() if k != "running"}, **live.to_dict()})
            else:
                progress(f"{news['model']} {news['version']}: replica {r['index']} is not healthy; restarting it")
                stop(_live(r), grace=5)
                started.append(self._start(news, rid, r["index"]))
        have = {r["index"] for r in keep + started}
        for i in range(int(news["count"])):
            if i not in have:
                started.append(self._start(news, rid, i))
        try:
            self._wait(news, started)
        except BaseException:
            for r in started:
                self._stop(news, rid, r)
            raise
        replicas = sorted(keep + started, key=lambda r: r["index"])
        return UpdateResult(self._outs(news, rid, replicas))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        rid = props.get("rid", id_)
        for r in map(_replica, props.get("replicas") or []):
            self._stop(props, rid, r)
        self._stop_spares(props, rid)
        shutil.rmtree(self._dir(props, rid), ignore_errors=True)


class LocalReplicaSet(pulumi.dynamic.Resource, module="local", name="ReplicaSet"):
    """Replica processes of one model version (see ReplicaSetProvider)."""

    replicas: pulumi.Output[list[dict[str, Any]]]
    spares: pulumi.Output[list[dict[str, Any]]]
    running: pulumi.Output[bool]
    rid: pulumi.Output[str]
    model_source: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        outs = {"replicas": None, "spares": None, "running": True, "rid": None}
        super().__init__(ReplicaSetProvider(), name, {**outs, **props}, opts)


# --------------------------------------------------------------------------- the front


class FrontendProvider(PortServerProvider):
    """The model's front process; the routing table is its input, reloaded in place."""

    inputs = (
        "routes",
        "shadow",
        "max_new_tokens",
        "max_context",
        "concurrency",
        "owner",
        "health_timeout",
        "capture",
        "idle_seconds",
        "cold_start_wait",
    )
    replaces_on = ("model", "state_dir")

    def port_owner(self, props: dict[str, Any]) -> str:
        return f"front/{props['model']}"

    def resource_id(self, props: dict[str, Any]) -> str:
        return f"{props['model']}-front"

    def _routes_file(self, props: dict[str, Any]) -> Path:
        return Path(props["state_dir"]) / "endpoints" / props["model"] / "routes.json"

    def _table(self, props: dict[str, Any]) -> RoutingTable:
        return RoutingTable(
            model=props["model"],
            owner=props["owner"],
            max_new_tokens=int(props["max_new_tokens"]),
            max_context=int(props["max_context"]) if props.get("max_context") else None,
            concurrency=int(props.get("concurrency", 16)),
            autoscale=Autoscale(
                target_in_flight=int(props.get("concurrency", 16)),
                replica_memory_gib=props.get("replica_memory_gib"),
                idle_seconds=props.get("idle_seconds"),
                cold_start_wait=float(props.get("cold_start_wait") or 60.0),
            ),
            variants=[
                VariantRoute(
                    version=v["version"],
                    weight=int(v["weight"]),
                    tokenizer=v.get("tokenizer"),
                    upstreams=[
                        Upstream(address=u["address"], pid=u.get("pid"), launch=u.get("launch")) for u in v["upstreams"]
                    ],
                    spares=[Upstream(address=u["address"], launch=u["launch"]) for u in v.get("spares") or []],
                )
                for v in props["routes"]
            ],
            shadow=ShadowRoute.model_validate(props["shadow"]) if props.get("shadow") else None,
        )

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        routes = news.get("routes")
        if isinstance(routes, list) and routes and all(isinstance(v, dict) for v in routes):
            total = sum(int(v.get("weight", 0)) for v in routes)
            if total != 100:
                failures.append(CheckFailure("routes", f"variant weights sum to {total}, must be 100"))
        return CheckResult(news, failures)

    def _start(self, props: dict[str, Any], port: int) -> dict[str, Any]:
        routes = self._routes_file(props)
        routes.parent.mkdir(parents=True, exist_ok=True)
        self._table(props).write(routes)
        write_capture_config(routes.parent, props.get("capture"))
        log = routes.parent / "front.log"
        # Under a keeper, which restarts the front if it dies (the front itself restarts replicas).
        serve = [sys.executable, "-m", "llmops.local.serve", "--routes", str(routes), "--port", str(port)]
        argv = [sys.executable, "-m", "llmops.local.serving.keeper", "--", *serve]
        outs = launch_server(
            props, port, argv, log=log, cwd=routes.parent, health_path="/health", what=f"{props['model']} front end"
        )
        (routes.parent / "front.pid").write_text(f"{outs['pid']}\n")
        progress(f"{props['model']}: front end serving on {outs['url']}")
        return outs

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        port = int(olds["port"])
        # The front reads its capture settings at start: a change restarts it on the same port.
        if self.alive({**olds, "running": True}) and olds.get("capture") == news.get("capture"):
            # Switch in place: write the table, ask the front to load it, confirm it did.
            table = self._table(news)
            table.write(self._routes_file(news))
            loaded = httpx.post(f"http://127.0.0.1:{port}/admin/reload", timeout=10)
            if loaded.status_code != 200 or RoutingTable.model_validate(loaded.json()) != table:
                raise StartError(f"{news['model']} front end did not load the new routes: {loaded.text[:500]}")
            versions = ", ".join(f"{v.version} {v.weight}%" for v in table.variants)
            progress(f"{news['model']}: front end now routes {versions}")
            return UpdateResult({**olds, **news, "running": True})
        progress(f"{news['model']}: (re)starting the front end on port {port}")
        return super().update(id_, olds, news)

    def cleanup(self, props: dict[str, Any]) -> None:
        routes = self._routes_file(props)
        for leftover in (routes, routes.parent / "front.pid"):
            leftover.unlink(missing_ok=True)


class LocalFrontend(pulumi.dynamic.Resource, module="local", name="Frontend"):
    """The model's OpenAI-compatible front port (see FrontendProvider)."""

    url: pulumi.Output[str]
    port: pulumi.Output[int]
    pid: pulumi.Output[int]
    running: pulumi.Output[bool]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(FrontendProvider(), name, {**SERVER_OUTPUTS, **props}, opts)


# --------------------------------------------------------------------------- the builder


def model_source(source: WeightsSource, root: Path, artifact_uri: pulumi.Output[str] | None) -> pulumi.Input[str]:
    """What a replica loads: a local folder (the training artifact, or a path under the repo) or a hub id."""
    if source.local == TRAINING_OUTPUT:
        if artifact_uri is None:
            raise ValueError(f"a version is {TRAINING_OUTPUT!r} but the stack runs no training job for this model")
        return artifact_uri.apply(lambda uri: uri.removeprefix("file://"))
    if source.artifact is not None:
        return str(ArtifactStore(root / STORE_DIR).path(source.artifact).resolve())
    if source.local is not None:
        return str((root / source.local).resolve())
    if source.huggingface is not None:
        hf = source.huggingface
        return f"{hf.repo}@{hf.revision}" if hf.revision else hf.repo
    raise ValueError(f"the local target cannot serve {source.uri}: use a local path, {TRAINING_OUTPUT} or a hub repo")


def _route(version: str, weight: int, replicas: list[Any], spares: list[Any] | None, source: str) -> dict[str, Any]:
    """One variant's entry of the front's routing table: its replicas, standby replicas and tokenizer."""
    return {
        "version": version,
        "weight": weight,
        "tokenizer": source,
        "upstreams": [{"address": r["address"], "pid": int(r["pid"]), "launch": r.get("launch")} for r in replicas],
        "spares": [{"address": r["address"], "launch": r["launch"]} for r in spares or []],
    }


def _routes(sets: dict[str, LocalReplicaSet], variants: list[tuple[str, int]]) -> pulumi.Output[list[dict[str, Any]]]:
    return pulumi.Output.all(
        *[
            pulumi.Output.all(sets[version].replicas, sets[version].spares, sets[version].model_source).apply(
                lambda a, version=version, weight=weight: _route(version, weight, a[0], a[1], a[2])
            )
            for version, weight in variants
        ]
    )


def _shadow(
    component: ModelEndpointOutputs, name: str, args: ModelEndpointArgs, common: dict[str, Any], artifact: Any
) -> dict[str, Any]:
    """The shadow version's own replica set; the front mirrors a sample of live requests to it."""
    dep, serving = args.deployment, args.deployment.model.serving
    assert dep.shadow is not None
    shadow = dep.shadow
    shadow_set = LocalReplicaSet(
        f"{name}-shadow-{shadow.version}",
        {
            **common,
            "version": shadow.version,
            "model_source": model_source(dep.variant_source(shadow), args.context.root, artifact),
            "count": 1,
            "max_count": 1,
            "device": "auto",
            "dtype": runtime_dtype(serving.dtype),
            "concurrency": serving.concurrency,
            "max_context": serving.max_context,
        },
        pulumi.ResourceOptions(parent=component),
    )
    return {
        "shadow": shadow_set.replicas.apply(
            lambda rs: {"version": shadow.version, "percent": shadow.percent, "upstreams": [r["address"] for r in rs]}
        )
    }


def _scale_to_zero(dep: Any) -> dict[str, Any]:
    """The front parks a variant idle this long and wakes it on the next request (None: never)."""
    stz = dep.scale_to_zero
    return {
        "idle_seconds": stz.idle_seconds if stz is not None else None,
        "cold_start_wait": stz.cold_start_wait_seconds if stz is not None else None,
    }


def build_endpoint(component: ModelEndpointOutputs, name: str, args: ModelEndpointArgs) -> None:
    """Children of a local ModelEndpoint: a replica set per variant, one front end."""
    ctx, dep = args.context, args.deployment
    serving, local = dep.model.serving, ctx.settings.local
    state_dir = str((ctx.root / local.state_dir).resolve())
    child = pulumi.ResourceOptions(parent=component)
    # A candidate's replicas start only after its evaluations passed.
    gated = pulumi.ResourceOptions(parent=component, depends_on=list(getattr(args, "evaluations", [])))
    common = {
        "model": dep.name,
        "state_dir": state_dir,
        "base_port": local.base_port,
        "port_span": PORT_SPAN,
        "health_timeout": float(local.health_timeout_seconds),
        **_scale_to_zero(dep),
    }
    artifact = args.training.artifact_uri if args.training is not None else None

    sets: dict[str, LocalReplicaSet] = {}
    for variant in dep.variants:
        sets[variant.version] = LocalReplicaSet(
            f"{name}-{variant.version}",
            {
                **common,
                "version": variant.version,
                "model_source": model_source(dep.variant_source(variant), ctx.root, artifact),
                "count": dep.min_replicas,
                "max_count": dep.max_replicas,
                "device": "auto",
                "dtype": runtime_dtype(serving.dtype),
                "concurrency": serving.concurrency,
                "max_context": serving.max_context,
            },
            gated,
        )

    front_props = _shadow(component, name, args, common, artifact) if dep.shadow is not None else {}
    routes = _routes(sets, [(v.version, v.weight) for v in dep.variants])
    front = LocalFrontend(
        f"{name}-front",
        {
            **common,
            "owner": dep.model.owner,
            "max_new_tokens": serving.max_new_tokens,
            "max_context": serving.max_context,
            "concurrency": serving.concurrency,
            "routes": routes,
            "capture": capture_settings(dep.model, ctx.root.resolve(), Path(state_dir)),
            "replica_memory_gib": args.sizing.total_gib,  # read at table writes; no update of its own
            **front_props,
        },
        child,
    )

    component.url = front.url
    component.endpoint_name = pulumi.Output.from_input(dep.name)
    component.metrics_targets = front.port.apply(lambda p: [f"127.0.0.1:{int(p)}"])
    component.details = pulumi.Output.all(front.port, front.pid, routes).apply(
        lambda a: {"port": a[0], "pid": a[1], "routes": a[2], "stateDir": state_dir}
    )
