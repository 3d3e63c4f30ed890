"""The kube target's control-plane processes as dynamic resources: started by `up`, stopped by `destroy`.

`KubeProcess` owns one long-lived process (etcd, kube-apiserver, controller-manager,
scheduler or kwok) started detached from the engine by `components.local.process`, and
returns only once its health check passes. `refresh` records whether it still runs, and
the next `up` restarts a dead one on the same port (the diff looks at the process, as
the local endpoint's does). `destroy` stops it and removes the folders it owned (etcd's
data), so nothing is left on the machine. `KubePki` writes the certificates and keys.
"""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path
from typing import Any

import httpx
import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from components.kube.pki import PkiPaths, kubeconfig, write_pki
from components.local.process import (
    ProcessRef,
    StartError,
    is_running,
    port_free,
    port_open,
    spawn_detached,
    stop,
    wait_until,
)

START_TIMEOUT = 120.0


def _healthy(health: dict[str, Any]) -> bool:
    """GET the health URL; with `ca`, over TLS checked against it and with the admin client certificate."""
    if "tcp" in health:
        return port_open(int(health["tcp"]))
    verify: ssl.SSLContext | bool = False  # controller-manager and scheduler serve a self-signed certificate
    if health.get("ca"):
        verify = ssl.create_default_context(cafile=health["ca"])
        verify.load_cert_chain(health["cert"], health["key"])
    return httpx.get(health["url"], verify=verify, timeout=2.0).status_code == 200


def _ref(props: dict[str, Any]) -> ProcessRef | None:
    return ProcessRef(int(props["pid"]), float(props["started"])) if props.get("pid") else None


class ProcessProvider(ResourceProvider):
    """Stateless: the argv, ports, health check and owned folders are all inputs."""

    def _start(self, props: dict[str, Any]) -> dict[str, Any]:
        for port in props["ports"]:
            if not port_free(int(port)):
                raise StartError(f"{props['name']}: port 127.0.0.1:{int(port)} is taken by another process")
        log = Path(props["log"])
        ref = spawn_detached(props["argv"], log_path=log, cwd=Path(props["cwd"]))
        try:
            wait_until(
                lambda: _healthy(props["health"]), ref=ref, timeout=START_TIMEOUT, log_path=log, what=props["name"]
            )
        except StartError:
            stop(ref, grace=5)
            raise
        return {**props, "pid": ref.pid, "started": ref.started, "running": True}

    def create(self, props: dict[str, Any]) -> CreateResult:
        for folder in props.get("owns", []):
            Path(folder).mkdir(parents=True, exist_ok=True)
        return CreateResult(props["name"], self._start(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        ref = _ref(olds)
        inputs = ("argv", "ports", "health", "owns")
        changed = any(olds.get(k) != news.get(k) for k in inputs)
        return DiffResult(
            changes=changed or ref is None or not is_running(ref), replaces=[], delete_before_replace=False
        )

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        ref = _ref(olds)
        if ref is not None:
            stop(ref, grace=10)
        return UpdateResult(self._start(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        ref = _ref(props)
        return ReadResult(id_, {**props, "running": ref is not None and is_running(ref)})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        ref = _ref(props)
        if ref is not None:
            stop(ref, grace=15)
        for folder in props.get("owns", []):
            shutil.rmtree(folder, ignore_errors=True)


class KubeProcess(pulumi.dynamic.Resource, module="kube", name="Process"):
    pid: pulumi.Output[int]
    running: pulumi.Output[bool]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(ProcessProvider(), name, {**props, "pid": None, "started": None, "running": None}, opts)


class PkiProvider(ResourceProvider):
    """Generates the CA, the serving and client certificates and the service-account key pair."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        paths = write_pki(Path(props["folder"]), int(props["apiserver_port"]))
        return CreateResult(props["folder"], {**props, "kubeconfig": paths.kubeconfig.read_text()})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # A folder without its keys (removed by hand) is made again, as a replacement.
        missing = not PkiPaths(Path(olds["folder"])).sa_key.is_file()
        changed = olds.get("apiserver_port") != news.get("apiserver_port") or olds.get("folder") != news.get("folder")
        return DiffResult(
            changes=changed or missing,
            replaces=["folder"] if changed or missing else [],
            delete_before_replace=True,
        )

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        paths = PkiPaths(Path(props["folder"]))
        text = kubeconfig(paths, int(props["apiserver_port"])) if paths.admin_crt.is_file() else ""
        return ReadResult(id_, {**props, "kubeconfig": text})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        shutil.rmtree(props["folder"], ignore_errors=True)


class KubePki(pulumi.dynamic.Resource, module="kube", name="Pki"):
    kubeconfig: pulumi.Output[str]

    def __init__(self, name: str, folder: str, apiserver_port: int, opts: pulumi.ResourceOptions | None = None):
        props = {"folder": folder, "apiserver_port": apiserver_port, "kubeconfig": None}
        super().__init__(PkiProvider(), name, props, opts)
