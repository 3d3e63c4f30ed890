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

import httpx
import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from components.contracts import DriftMonitorArgs, DriftMonitorOutputs
from components.local.endpoint import PORT_SPAN, child_env, stack_ports
from components.local.process import ProcessRef, is_running, port_open, spawn_detached, stop, wait_until
from llmops.datasets.capture import capture_root

DRIFT_TARGETS = "drift-targets"  # under <state_dir>/monitoring/, read by prometheus_config's file_sd job
_INPUTS = ("model", "dataset", "capture", "interval", "threshold", "drift_share", "min_records", "root")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _target_file(props: dict[str, Any]) -> Path:
    return Path(props["state_dir"]) / "monitoring" / DRIFT_TARGETS / f"{props['model']}.json"


class DriftMonitorProvider(ResourceProvider):
    def _start(self, props: dict[str, Any], port: int) -> dict[str, Any]:
        folder = Path(props["state_dir"]) / "drift" / props["model"]
        folder.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable, "-m", "llmops.datasets.drift", "serve",
            "--model", props["model"], "--dataset", props["dataset"], "--capture", props["capture"],
            "--port", str(port), "--interval", str(props["interval"]), "--threshold", str(props["threshold"]),
            "--drift-share", str(props["drift_share"]), "--min-records", str(int(props["min_records"])),
        ]  # fmt: skip
        log = folder / "monitor.log"
        ref = spawn_detached(argv, log_path=log, cwd=folder, env={**child_env(), "LLMOPS_ROOT": props["root"]})
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: httpx.get(f"{url}/metrics", timeout=2).status_code == 200,
            ref=ref,
            timeout=float(props["health_timeout"]),
            log_path=log,
            what=f"{props['model']} drift monitor (port {port})",
        )
        target = _target_file(props)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": {"endpoint": props["model"]}}]))
        tmp.replace(target)
        _progress(f"{props['model']}: drift monitor on {url}/metrics every {props['interval']}s")
        return {**props, **ref.to_dict(), "port": port, "url": url, "log": str(log), "running": True}

    def create(self, props: dict[str, Any]) -> CreateResult:
        owner = f"drift/{props['model']}"
        port = stack_ports(props).allocate(owner)
        try:
            outs = self._start(props, port)
        except BaseException:
            stack_ports(props).release(owner)
            raise
        return CreateResult(f"{props['model']}-drift", outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        alive = "pid" in props and is_running(ProcessRef.from_dict(props)) and port_open(int(props["port"]))
        return ReadResult(id_, {**props, "running": alive})

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = ["state_dir"] if olds.get("state_dir") != news.get("state_dir") else []
        changed = [k for k in _INPUTS if olds.get(k) != news.get(k)]
        dead = olds.get("running") is False or not self.read(id_, olds).outs["running"]
        return DiffResult(changes=bool(replaces or changed or dead), replaces=replaces, delete_before_replace=True)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        if "pid" in olds:
            stop(ProcessRef.from_dict(olds), grace=5)
        return UpdateResult(self._start(news, int(olds["port"])))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        if "pid" in props:
            stop(ProcessRef.from_dict(props))
        _target_file(props).unlink(missing_ok=True)
        stack_ports(props).release(f"drift/{props['model']}")


class LocalDriftMonitor(pulumi.dynamic.Resource, module="local", name="DriftMonitor"):
    url: pulumi.Output[str]
    port: pulumi.Output[int]
    running: pulumi.Output[bool]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        outs = {"url": None, "port": None, "pid": None, "started": None, "log": None, "running": True}
        super().__init__(DriftMonitorProvider(), name, {**outs, **props}, opts)


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
