"""Serving on the kube target: a local replica per Ready pod, behind the local front end, on 127.0.0.1.

kwok pods run no process, so the EKS builders' Service has nothing behind it. The API
server cannot be pointed at this machine instead: it refuses loopback and link-local
addresses in Endpoints and EndpointSlices (`ValidateEndpointIP`), and its Service proxy
(`/api/v1/namespaces/N/services/S:P/proxy/`) only dials an endpoint whose address is its
pod's IP (`isValidAddress`), which kwok invents. Routing through a reachable host address
would mean binding replicas to a network interface, or an address alias that needs root.
So `PodReplicas` runs `llmops.kube.pod_replicas`: it follows the model's Ready pods on the
API server and keeps one replica of the local target's replica server per pod, behind the
local target's front end, all on 127.0.0.1. The endpoint's URL is that front.

The weights are a stand-in: the project's tiny model (`STAND_IN_MODEL`), trained by the
local target's own training resource into the checkout's artifact store (reused when the
local stack already trained it). The registry model's name is what clients send and what
the front answers under; `up`'s log and the stack outputs say the stand-in answers.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import httpx
import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from components.aws.kubernetes import SERVING_NAMESPACE
from components.context import StackContext
from components.contracts import ModelEndpointArgs, ModelEndpointOutputs, TrainingJobArgs, TrainingJobOutputs
from components.kube.cluster import PORTS, api_address
from components.kube.pki import PkiPaths
from components.local.port_server import child_env, progress
from components.local.process import PortAllocator, ProcessRef, is_running, spawn_detached, stop, wait_until
from components.local.training import build_training
from llmops.kube.pod_replicas import PodReplicasConfig
from llmops.local.serving.replica import runtime_dtype
from llmops.registry import ModelEntry

STAND_IN_MODEL = "tiny-chat"
PORT_SPAN = 40  # after the control plane's ports: fronts and replicas of the stack's endpoints


class StandInWeights(TrainingJobOutputs):
    """The tiny model's weights, trained as the local target trains them (a cached, content-addressed run)."""

    def __init__(self, name: str, context: StackContext, model: ModelEntry, opts: pulumi.ResourceOptions):
        super().__init__("llmops:kube:StandInWeights", name, {"model": model.name}, opts)
        self.model = model
        build_training(self, name, TrainingJobArgs(context, model))
        self.register_outputs({"artifactUri": self.artifact_uri})


def _ports(props: dict[str, Any]) -> PortAllocator:
    return PortAllocator(Path(props["state_dir"]), int(props["base_port"]), PORT_SPAN)


def _folder(props: dict[str, Any]) -> Path:
    return Path(props["state_dir"]) / "kube" / "serving" / props["model"]


class PodReplicasProvider(ResourceProvider):
    """The pod follower of one model: started by `up`, restarted when dead, stopped by `destroy`."""

    def _owners(self, props: dict[str, Any]) -> list[str]:
        return [f"kube-front/{props['model']}"] + [
            f"kube-replica/{props['model']}/{i}" for i in range(int(props["slots"]))
        ]

    def _start(self, props: dict[str, Any]) -> dict[str, Any]:
        allocator, folder = _ports(props), _folder(props)
        front, *replicas = [allocator.allocate(owner) for owner in self._owners(props)]
        pki = PkiPaths(Path(props["pki"]))
        config = PodReplicasConfig(
            **props["serving"],
            ca=str(pki.ca_crt),
            cert=str(pki.admin_crt),
            key=str(pki.admin_key),
            weights_dir=props["weights_dir"],
            front_port=front,
            replica_ports=replicas,
            folder=str(folder),
        )
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(config.model_dump_json(indent=2))
        log = folder / "pod-replicas.log"
        argv = [sys.executable, "-m", "llmops.kube.pod_replicas", "--config", str(folder / "config.json")]
        ref = spawn_detached(argv, log_path=log, cwd=folder, env={**child_env(), "OMP_NUM_THREADS": "1"})
        url = f"http://127.0.0.1:{front}"
        body = {"model": props["serving"]["model"], "prompt": "Hello", "max_tokens": 1}
        try:
            wait_until(
                lambda: httpx.post(f"{url}/v1/completions", json=body, timeout=30).status_code == 200,
                ref=ref,
                timeout=float(props["health_timeout"]),
                log_path=log,
                what=f"{props['model']}: replicas of its Ready pods (front {url})",
                interval=1.0,
            )
        except BaseException:
            stop(ref, grace=10)
            raise
        progress(f"{props['model']}: answers on {url} (stand-in weights: {props['stand_in']})")
        return {**props, **ref.to_dict(), "url": url, "port": front, "running": True}

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(props["model"], self._start(props))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        alive = bool(props.get("pid")) and is_running(ProcessRef.from_dict(props))
        return ReadResult(id_, {**props, "running": alive})

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        inputs = ("serving", "weights_dir", "slots", "pki", "base_port", "state_dir", "revision")
        changed = any(olds.get(k) != news.get(k) for k in inputs)
        dead = olds.get("running") is False or not self.read(id_, olds).outs["running"]
        return DiffResult(changes=changed or dead, replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        if olds.get("pid"):
            stop(ProcessRef.from_dict(olds), grace=40)
        return UpdateResult(self._start(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        if props.get("pid"):
            stop(ProcessRef.from_dict(props), grace=40)  # the group: the follower, its front and replicas
        allocator = _ports(props)
        for owner in self._owners(props):
            allocator.release(owner)
        shutil.rmtree(_folder(props), ignore_errors=True)


class PodReplicas(pulumi.dynamic.Resource, module="kube", name="PodReplicas"):
    url: pulumi.Output[str]
    port: pulumi.Output[int]
    running: pulumi.Output[bool]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        outs = {"url": None, "port": None, "pid": None, "started": None, "running": None}
        super().__init__(PodReplicasProvider(), name, {**outs, **props}, opts)


def build_kube_serving(
    component: ModelEndpointOutputs, name: str, args: ModelEndpointArgs, after: pulumi.Resource
) -> None:
    """The kube endpoint's answering side: the pod follower, once the pods run (`after`)."""
    ctx, dep, weights = args.context, args.deployment, args.training
    if weights is None or not isinstance(weights, StandInWeights):
        raise ValueError(f"{dep.name}: the kube target serves the stand-in weights ({STAND_IN_MODEL})")
    stand_in = weights.model
    local = ctx.settings.local
    pki, server = api_address(ctx)
    pulumi.log.info(
        f"kube target: {dep.name} answers with the stand-in weights of {STAND_IN_MODEL} "
        f"(not {dep.name}'s own), one local replica per Ready pod",
        component,
    )
    props = {
        "model": dep.name,
        "stand_in": STAND_IN_MODEL,
        "state_dir": str((ctx.root / local.state_dir).resolve()),
        "base_port": local.base_port + len(PORTS),
        "health_timeout": float(local.health_timeout_seconds),
        "pki": pki,
        "weights_dir": weights.artifact_uri.apply(lambda uri: uri.removeprefix("file://")),
        # Replicas that may run at once: the HPA's ceiling over the versions, at least one each.
        "slots": max(dep.max_replicas, 1) * len(dep.variants),
        "revision": [f"{v.version}:{v.weight}" for v in dep.variants],
        "serving": {
            "model": dep.name,
            "owner": dep.model.owner,
            "namespace": SERVING_NAMESPACE,
            "selector": f"app.kubernetes.io/name={dep.name}",
            "weights": {v.version: v.weight for v in dep.variants},
            "server": server,
            "dtype": runtime_dtype(stand_in.serving.dtype),
            "concurrency": stand_in.serving.concurrency,
            "max_context": stand_in.serving.max_context,
            "max_new_tokens": stand_in.serving.max_new_tokens,
        },
    }
    replicas = PodReplicas(f"{name}-replicas", props, pulumi.ResourceOptions(parent=component, depends_on=[after]))
    service_url = component.url
    component.url = replicas.url
    component.details = pulumi.Output.all(component.details, service_url).apply(
        lambda a: {**(a[0] or {}), "serviceUrl": a[1], "standIn": STAND_IN_MODEL}
    )
