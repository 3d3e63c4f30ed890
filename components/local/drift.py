"""The local drift monitor: a supervised `python -m llmops.datasets.drift serve` process per model.

It recomputes drift every `interval_seconds` over the model's capture files and
exports the result on /metrics. Prometheus finds it through a file-based
discovery target (`<state_dir>/monitoring/drift-targets/<model>.json`), so the
monitor needs nothing from the Prometheus resource and vice versa. An update
restarts the process on its port; refresh notices a dead process and the next
`up` restarts it; delete stops it and removes its target file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pulumi

from components.contracts import DriftMonitorArgs, DriftMonitorOutputs
from components.local.port_server import PORT_SPAN, SERVER_OUTPUTS, PortServerProvider, child_env, launch, progress
from llmops.datasets.capture import capture_root

DRIFT_TARGETS = "drift-targets"  # under <state_dir>/monitoring/, read by prometheus_config's file_sd job
_INPUTS = ("model", "dataset", "capture", "interval", "threshold", "drift_share", "min_records", "root")


def _target_file(props: dict[str, Any]) -> Path:
    return Path(props["state_dir"]) / "monitoring" / DRIFT_TARGETS / f"{props['model']}.json"


class DriftMonitorProvider(PortServerProvider):
    inputs = _INPUTS

    def port_owner(self, props: dict[str, Any]) -> str:
        return f"drift/{props['model']}"

    def resource_id(self, props: dict[str, Any]) -> str:
        return f"{props['model']}-drift"

    def _start(self, props: dict[str, Any], port: int) -> dict[str, Any]:
        folder = Path(props["state_dir"]) / "drift" / props["model"]
        folder.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable, "-m", "llmops.datasets.drift", "serve",
            "--model", props["model"], "--dataset", props["dataset"], "--capture", props["capture"],
            "--port", str(port), "--interval", str(props["interval"]), "--threshold", str(props["threshold"]),
            "--drift-share", str(props["drift_share"]), "--min-records", str(int(props["min_records"])),
        ]  # fmt: skip
        env = {**child_env(), "LLMOPS_ROOT": props["root"]}
        what = f"{props['model']} drift monitor"
        outs = launch(
            props, port, argv, log=folder / "monitor.log", cwd=folder, health_path="/metrics", what=what, env=env
        )
        # Prometheus finds the monitor through a file_sd target file (see prometheus_config).
        target = _target_file(props)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": {"endpoint": props["model"]}}]))
        tmp.replace(target)
        progress(f"{props['model']}: drift monitor on {outs['url']}/metrics every {props['interval']}s")
        return outs

    def cleanup(self, props: dict[str, Any]) -> None:
        _target_file(props).unlink(missing_ok=True)


class LocalDriftMonitor(pulumi.dynamic.Resource, module="local", name="DriftMonitor"):
    url: pulumi.Output[str]
    port: pulumi.Output[int]
    running: pulumi.Output[bool]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(DriftMonitorProvider(), name, {**SERVER_OUTPUTS, **props}, opts)


def build_drift_monitor(component: DriftMonitorOutputs, name: str, args: DriftMonitorArgs) -> None:
    ctx, dep = args.context, args.deployment
    drift = dep.model.monitoring.drift
    assert drift is not None
    local = ctx.settings.local
    state_dir = (ctx.root / local.state_dir).resolve()
    monitor = LocalDriftMonitor(
        f"{name}-process",
        {
            "model": dep.name,
            "dataset": args.dataset,
            "capture": str(capture_root(state_dir)),
            "interval": float(drift.interval_seconds),
            "threshold": drift.threshold,
            "drift_share": drift.drift_share,
            "min_records": drift.min_records,
            "root": str(ctx.root.resolve()),
            "state_dir": str(state_dir),
            "base_port": local.base_port,
            "port_span": PORT_SPAN,
            "health_timeout": float(local.health_timeout_seconds),
        },
        pulumi.ResourceOptions(parent=component),
    )
    component.metrics_url = monitor.url.apply(lambda u: f"{u}/metrics")
