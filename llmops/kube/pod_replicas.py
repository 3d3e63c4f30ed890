"""`python -m llmops.kube.pod_replicas --config FILE`: a local replica process for each Ready pod.

kwok plays the kubelets of the kube target's GPU nodes, so its pods run no container. This
process is what answers for them: it lists the model's pods on the API server every
`POLL_SECONDS` and keeps one replica of the local target's replica server
(`llmops.local.serving.replica`) per Ready pod, on 127.0.0.1, with the stand-in weights.
The local target's front end (`llmops.local.serve`) is the model's one URL and balances over
the replicas by the registry's version weights, as the model's HTTPRoute does on EKS.

- A pod turns Ready: its replica starts, and joins the front's table once it answered a
  health check and one generated token.
- A pod goes (scale-in, deletion, eviction): its replica leaves the table, then is stopped.
- A replica process that dies while its pod is Ready is started again (a container restart).
- The API server does not answer: what runs keeps serving (as kube-proxy keeps its rules).

The front and every replica are children of this process, in its process group, and get
SIGTERM if it dies (PR_SET_PDEATHSIG): stopping this process stops everything it started.
"""

from __future__ import annotations

import argparse
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from llmops.local.serving.keeper import die_with_parent
from llmops.local.serving.replica import replica_argv
from llmops.local.serving.routing import RoutingTable, Upstream, VariantRoute

POLL_SECONDS = 1.0
STOP_GRACE_SECONDS = 30.0
VERSION_LABEL = "llmops.io/version"


class PodReplicasConfig(BaseModel):
    """What the kube endpoint provider hands the process (written as JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="The serving name clients send as `model` (the registry model).")
    owner: str
    namespace: str
    selector: str = Field(description="Label selector of the model's pods, across its versions.")
    weights: dict[str, int] = Field(description="Each version's share of the traffic (the registry's weights).")
    server: str = Field(description="The API server's URL.")
    ca: str
    cert: str
    key: str
    weights_dir: str = Field(description="The stand-in model every replica loads.")
    dtype: str
    concurrency: int = Field(ge=1)
    max_context: int = Field(ge=1)
    max_new_tokens: int = Field(ge=1)
    front_port: int
    replica_ports: list[int] = Field(min_length=1, description="One port per replica that may run at once.")
    folder: str = Field(description="Routes file and replica logs.")


@dataclass
class Replica:
    pod: str
    version: str
    port: int
    process: subprocess.Popen[bytes]
    serving: bool = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def _spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A child in this process group (a group stop reaches it) that dies with this process."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent
        )


def _end(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a replica drains its in-flight requests), SIGKILL past the grace period."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ready_pods(api: httpx.Client, config: PodReplicasConfig) -> dict[str, str]:
    """The model's pods whose Ready condition is True and that are not being deleted: name -> version."""
    response = api.get(f"/api/v1/namespaces/{config.namespace}/pods", params={"labelSelector": config.selector})
    response.raise_for_status()
    ready: dict[str, str] = {}
    for pod in response.json().get("items", []):
        meta, status = pod["metadata"], pod.get("status", {})
        conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
        if conditions.get("Ready") == "True" and not meta.get("deletionTimestamp"):
            ready[meta["name"]] = meta.get("labels", {}).get(VERSION_LABEL, "")
    return ready


class PodReplicas:
    """The replicas and the front of one model; `sync` makes them follow the Ready pods."""

    def __init__(self, config: PodReplicasConfig, api: httpx.Client):
        self.config, self.api = config, api
        self.folder = Path(config.folder)
        self.routes = self.folder / "routes.json"
        self.replicas: dict[str, Replica] = {}
        self.full: set[str] = set()  # pods already told there is no port for them
        self.table = self._table()
        self.table.write(self.routes)
        self.front = self._start_front()

    def _table(self) -> RoutingTable:
        c = self.config
        variants = [
            VariantRoute(
                version=version,
                weight=weight,
                tokenizer=c.weights_dir,
                upstreams=[
                    Upstream(address=r.address, pid=r.process.pid)
                    for r in sorted(self.replicas.values(), key=lambda r: r.port)
                    if r.version == version and r.serving
                ],
            )
            for version, weight in sorted(c.weights.items())
            if any(r.version == version and r.serving for r in self.replicas.values())
        ]
        return RoutingTable(
            model=c.model,
            owner=c.owner,
            max_new_tokens=c.max_new_tokens,
            max_context=c.max_context,
            concurrency=c.concurrency,
            variants=variants,
        )

    def _start_front(self) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "llmops.local.serve", "--routes", str(self.routes)]
        return _spawn([*argv, "--port", str(self.config.front_port)], self.folder / "front.log")

    def _publish(self) -> None:
        """Write the table and have the front load it, when it changed."""
        table = self._table()
        if table == self.table:
            return
        table.write(self.routes)
        try:
            httpx.post(f"http://127.0.0.1:{self.config.front_port}/admin/reload", timeout=30).raise_for_status()
        except httpx.HTTPError as exc:  # a front still starting reads the file when it comes up
            _log(f"front did not reload yet ({exc})")
        self.table = table
        serving = {v.version: [u.address for u in v.upstreams] for v in table.variants}
        _log(f"serving {serving or 'nothing (no Ready pod)'}")

    def _start(self, pod: str, version: str) -> None:
        used = {r.port for r in self.replicas.values()}
        port = next((p for p in self.config.replica_ports if p not in used), None)
        if port is None:
            if pod not in self.full:
                _log(f"pod {pod}: no replica port left ({len(used)} in use): not served")
                self.full.add(pod)
            return
        self.full.discard(pod)
        c = self.config
        argv = replica_argv(
            sys.executable,
            c.weights_dir,
            port=port,
            device="cpu",
            dtype=c.dtype,
            concurrency=c.concurrency,
            max_context=c.max_context,
        )
        process = _spawn(argv, self.folder / f"replica-{port}.log")
        self.replicas[pod] = Replica(pod, version, port, process)
        _log(f"pod {pod} ({version}) is Ready: replica started on port {port} (pid {process.pid})")

    def _answers(self, replica: Replica) -> bool:
        """Health, then one generated token (which also warms the replica up)."""
        base = f"http://{replica.address}"
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code != 200:
                return False
            warm = httpx.post(f"{base}/v1/completions", json={"prompt": "Hello", "max_tokens": 1}, timeout=60)
            return warm.status_code == 200
        except httpx.HTTPError:
            return False

    def _retire(self, pod: str, why: str) -> None:
        replica = self.replicas.pop(pod)
        self._publish()  # out of the table before it stops: no request is sent to a draining replica
        _log(f"pod {pod} {why}: stopping its replica on port {replica.port}")
        _end(replica.process)

    def sync(self) -> None:
        if self.front.poll() is not None:
            _log(f"front exited with {self.front.returncode}: starting it again")
            self.front = self._start_front()
        try:
            pods = ready_pods(self.api, self.config)
        except (httpx.HTTPError, ValueError) as exc:
            _log(f"API server did not answer ({exc}): serving what runs")
            return
        for pod in [p for p in self.replicas if p not in pods]:
            self._retire(pod, "is gone or not Ready")
        for pod, version in sorted(pods.items()):
            replica = self.replicas.get(pod)
            if replica is not None and replica.process.poll() is not None:
                self._retire(pod, f"is Ready but its replica exited with {replica.process.returncode}")
                replica = None
            if replica is None:
                self._start(pod, version)
            elif not replica.serving and self._answers(replica):
                replica.serving = True
                _log(f"pod {pod}: replica on port {replica.port} answers")
        self._publish()

    def close(self) -> None:
        for pod in list(self.replicas):
            self._retire(pod, "stops with the endpoint")
        _end(self.front)


def api_client(config: PodReplicasConfig) -> httpx.Client:
    context = ssl.create_default_context(cafile=config.ca)
    context.load_cert_chain(config.cert, config.key)
    return httpx.Client(base_url=config.server, verify=context, timeout=10.0)


def run(config: PodReplicasConfig) -> int:
    stopping = False

    def on_stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    Path(config.folder).mkdir(parents=True, exist_ok=True)
    with api_client(config) as api:
        replicas = PodReplicas(config, api)
        _log(f"{config.model}: front on 127.0.0.1:{config.front_port}, following pods {config.selector}")
        try:
            while not stopping:
                replicas.sync()
                time.sleep(POLL_SECONDS)
        finally:
            replicas.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmops.kube.pod_replicas", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="PodReplicasConfig as JSON")
    args = parser.parse_args(argv)
    return run(PodReplicasConfig.model_validate_json(args.config.read_text()))


if __name__ == "__main__":
    raise SystemExit(main())
