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

import pulumi
from pulumi.dynamic import UpdateResult

from components.local.port_server import SERVER_OUTPUTS, PortServerProvider, launch, progress
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


class DashboardProvider(PortServerProvider):
    inputs = ("records", "prometheus_url", "root", "health_timeout")
    stop_grace = 5

    def port_owner(self, props: dict[str, Any]) -> str:
        return PORT_OWNER

    def _start(self, props: dict[str, Any], port: int) -> dict[str, Any]:
        folder = _write_records(props)
        argv = [
            sys.executable, "-m", "llmops.dashboard.server", "--port", str(port),
            "--prometheus", props["prometheus_url"], "--records", str(folder / RECORDS_FILE),
        ]  # fmt: skip
        outs = launch(
            props,
            port,
            argv,
            log=folder / "dashboard.log",
            cwd=Path(props["root"]),
            health_path="/healthz",
            what="dashboard",
        )
        progress(f"dashboard: serving on {outs['url']}")
        return outs

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        # The server reads its records file on every request: new records need no restart.
        restart = any(olds.get(k) != news.get(k) for k in ("prometheus_url", "root"))
        if not restart and self.alive({**olds, "running": True}):
            _write_records(news)
            return UpdateResult({**olds, **news, "running": True})
        return super().update(id_, olds, news)

    def cleanup(self, props: dict[str, Any]) -> None:
        shutil.rmtree(_folder(props), ignore_errors=True)


class LocalDashboard(pulumi.dynamic.Resource, module="local", name="Dashboard"):
    url: pulumi.Output[str]
    port: pulumi.Output[int]
    pid: pulumi.Output[int]
    running: pulumi.Output[bool]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(DashboardProvider(), name, {**SERVER_OUTPUTS, **props}, opts)


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
