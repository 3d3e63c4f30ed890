"""The local dashboard: a page per model drawn from the stack's Prometheus and the records it keeps.

`LocalDashboard` is a dynamic resource like `LocalPrometheus`: create starts
`python -m llmops.dashboard.server` detached on a port of the stack's range, bound to
127.0.0.1; an update rewrites its records file (deployed models with their thresholds,
evaluation results, lineage), which the server reads on every request, so a deploy
never restarts it; refresh notices a dead server and the next `up` starts it again on
its port; delete stops it and removes its folder.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import httpx
import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from components.local.endpoint import child_env, stack_ports
from components.local.process import ProcessRef, is_running, port_open, spawn_detached, stop, wait_until
from llmops.registry import Deployment

PORT_OWNER = "dashboard"
RECORDS_FILE = "records.json"


def _folder(props: dict[str, Any]) -> Path:
    return Path(props["state_dir"]) / "dashboard"


def _write_records(props: dict[str, Any]) -> Path:
    folder = _folder(props)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{RECORDS_FILE}.tmp"
    tmp.write_text(props["records"])
    tmp.replace(folder / RECORDS_FILE)
    return folder


class DashboardProvider(ResourceProvider):
    def _start(self, props: dict[str, Any], port: int) -> dict[str, Any]:
        folder = _write_records(props)
        argv = [
            sys.executable, "-m", "llmops.dashboard.server", "--port", str(port),
            "--prometheus", props["prometheus_url"], "--records", str(folder / RECORDS_FILE),
        ]  # fmt: skip
        log = folder / "dashboard.log"
        ref = spawn_detached(argv, log_path=log, cwd=Path(props["root"]), env=child_env())
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200,
            ref=ref,
            timeout=float(props["health_timeout"]),
            log_path=log,
            what=f"dashboard (port {port})",
        )
        print(f"dashboard: serving on {url}", file=sys.stderr, flush=True)
        return {**props, **ref.to_dict(), "port": port, "url": url, "log": str(log), "running": True}

    def create(self, props: dict[str, Any]) -> CreateResult:
        port = stack_ports(props).allocate(PORT_OWNER)
        try:
            outs = self._start(props, port)
        except BaseException:
            stack_ports(props).release(PORT_OWNER)
            raise
        return CreateResult("dashboard", outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        alive = "pid" in props and is_running(ProcessRef.from_dict(props)) and port_open(int(props["port"]))
        return ReadResult(id_, {**props, "running": alive})

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = ["state_dir"] if olds.get("state_dir") != news.get("state_dir") else []
        keys = ("records", "prometheus_url", "root", "health_timeout")
        changed = [k for k in keys if olds.get(k) != news.get(k)]
        dead = olds.get("running") is False or not (self.read(id_, olds).outs or {}).get("running")
        return DiffResult(changes=bool(replaces or changed or dead), replaces=replaces, delete_before_replace=True)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        ref, port = ProcessRef.from_dict(olds), int(olds["port"])
        restart = any(olds.get(k) != news.get(k) for k in ("prometheus_url", "root"))
        if not restart and is_running(ref) and port_open(port):
            _write_records(news)
            return UpdateResult({**olds, **news, "running": True})
        stop(ref, grace=5)
        return UpdateResult(self._start(news, port))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        if "pid" in props:
            stop(ProcessRef.from_dict(props), grace=5)
        stack_ports(props).release(PORT_OWNER)
        shutil.rmtree(_folder(props), ignore_errors=True)


class LocalDashboard(pulumi.dynamic.Resource, module="local", name="Dashboard"):
    url: pulumi.Output[str]
    port: pulumi.Output[int]
    pid: pulumi.Output[int]
    running: pulumi.Output[bool]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        outs = {"url": None, "port": None, "pid": None, "started": None, "log": None, "running": True}
        super().__init__(DashboardProvider(), name, {**outs, **props}, opts)


def served_models(deployments: dict[str, Deployment]) -> dict[str, Any]:
    """What the dashboard lists: each model's versions and weights, and the thresholds its panels draw."""
    out = {}
    for name, dep in sorted(deployments.items()):
        drift = dep.model.monitoring.drift
        out[name] = {
            "versions": [{"version": v.version, "weight": v.weight} for v in dep.variants],
            "slo": {
                "p95_latency_ms": dep.model.monitoring.slo.p95_latency_ms,
                "error_rate": dep.model.monitoring.slo.error_rate,
            },
            "drift_share": drift.drift_share if drift is not None else None,
        }
    return out


def records_json(stack: str, environment: str, root: Path, models: dict[str, Any], **records: Any) -> str:
    return json.dumps(
        {"stack": stack, "environment": environment, "root": str(root), "models": models, **records},
        indent=2,
        sort_keys=True,
        default=str,
    )
