"""Local monitoring: a real Prometheus scraping every local endpoint, with the registry's SLO alerts.

`LocalPrometheus` is a dynamic resource whose inputs are the generated files
(`prometheus.yml`, the alert rules from `llmops.observability.prometheus_rules`,
the Grafana dashboard): create starts Debian's `prometheus` detached on a port of
the stack's range with its TSDB in the state folder; an update rewrites the
files, checks them with `promtool` and hot-reloads (`POST /-/reload`), so a new
endpoint or SLO never restarts it; refresh notices a dead server and the next
`up` restarts it; delete stops it and removes its data.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pulumi
import yaml
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from components.contracts import MonitoringStackArgs, MonitoringStackOutputs
from components.local.dashboard import LocalDashboard, records_json, served_models
from components.local.drift import DRIFT_TARGETS
from components.local.endpoint import PORT_SPAN, child_env, stack_ports
from components.local.process import (
    ProcessRef,
    StartError,
    is_running,
    port_open,
    spawn_detached,
    stop,
    wait_until,
)
from llmops.observability import dashboard_json, prometheus_rules

SCRAPE_INTERVAL = "2s"  # short, so local alerts and tests react within seconds
RULE_WINDOW = "30s"  # rate window of the SLO rules: a few scrapes, not the 5m a cluster uses
CONFIG_FILE, RULES_FILE, DASHBOARD_FILE = "prometheus.yml", "rules.yml", "grafana-dashboard.json"
PORT_OWNER = "prometheus"


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prometheus_config(targets: dict[str, list[str]], scrape_interval: str = SCRAPE_INTERVAL) -> dict[str, Any]:
    """Scrape every endpoint's front end (`model` label per target), evaluate the rule file."""
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": [RULES_FILE],
        "scrape_configs": [
            {
                "job_name": "llmops-serving",
                # The front end labels its own series with model and version: keep them.
                "honor_labels": True,
                "static_configs": [
                    {"targets": sorted(addresses), "labels": {"endpoint": model}}
                    for model, addresses in sorted(targets.items())
                    if addresses
                ],
            },
            {
                # Drift monitors (components/local/drift.py) write their targets here as they start.
                "job_name": "llmops-drift",
                "honor_labels": True,
                "file_sd_configs": [{"files": [f"{DRIFT_TARGETS}/*.json"], "refresh_interval": "5s"}],
            },
        ],
    }


def _folder(props: dict[str, Any]) -> Path:
    return Path(props["state_dir"]) / "monitoring"


def _write_checked(props: dict[str, Any]) -> Path:
    """Write the three files and have promtool check config and rules; raise with its message if wrong."""
    folder = _folder(props)
    folder.mkdir(parents=True, exist_ok=True)
    for name, key in ((CONFIG_FILE, "config"), (RULES_FILE, "rules"), (DASHBOARD_FILE, "dashboard")):
        tmp = folder / f".{name}.tmp"
        tmp.write_text(props[key])
        tmp.replace(folder / name)
    promtool = shutil.which("promtool")
    if promtool is not None:
        result = subprocess.run(
            [promtool, "check", "config", str(folder / CONFIG_FILE)], capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            raise StartError(f"promtool rejected the generated configuration:\n{result.stdout}{result.stderr}")
    return folder


class PrometheusProvider(ResourceProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        if shutil.which("prometheus") is None:
            failures.append(
                CheckFailure("prometheus", "no `prometheus` on PATH: run `make setup` (Debian package prometheus)")
            )
        return CheckResult(news, failures)

    def _start(self, props: dict[str, Any], port: int) -> dict[str, Any]:
        folder = _write_checked(props)
        binary = shutil.which("prometheus")
        if binary is None:
            raise StartError("no `prometheus` on PATH: run `make setup` (Debian package prometheus)")
        argv = [
            binary,
            f"--config.file={folder / CONFIG_FILE}",
            f"--storage.tsdb.path={folder / 'data'}",
            "--storage.tsdb.retention.time=2d",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ]
        log = folder / "prometheus.log"
        ref = spawn_detached(argv, log_path=log, cwd=folder, env=child_env())
        (folder / "prometheus.pid").write_text(f"{ref.pid}\n")
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: httpx.get(f"{url}/-/ready", timeout=2).status_code == 200,
            ref=ref,
            timeout=float(props["health_timeout"]),
            log_path=log,
            what=f"prometheus (port {port})",
        )
        _progress(f"prometheus: serving on {url}")
        return {**props, **ref.to_dict(), "port": port, "url": url, "log": str(log), "running": True}

    def create(self, props: dict[str, Any]) -> CreateResult:
        port = stack_ports(props).allocate(PORT_OWNER)
        try:
            outs = self._start(props, port)
        except BaseException:
            stack_ports(props).release(PORT_OWNER)
            raise
        return CreateResult("prometheus", outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        alive = "pid" in props and is_running(ProcessRef.from_dict(props)) and port_open(int(props["port"]))
        return ReadResult(id_, {**props, "running": alive})

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = ["state_dir"] if olds.get("state_dir") != news.get("state_dir") else []
        changed = [k for k in ("config", "rules", "dashboard", "health_timeout") if olds.get(k) != news.get(k)]
        dead = olds.get("running") is False or not self.read(id_, olds).outs["running"]
        return DiffResult(changes=bool(replaces or changed or dead), replaces=replaces, delete_before_replace=True)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        ref, port = ProcessRef.from_dict(olds), int(olds["port"])
        if is_running(ref) and port_open(port):
            _write_checked(news)
            reloaded = httpx.post(f"http://127.0.0.1:{port}/-/reload", timeout=30)
            if reloaded.status_code != 200:
                raise StartError(f"prometheus did not reload its configuration: {reloaded.text[:500]}")
            _progress("prometheus: configuration reloaded")
            return UpdateResult({**olds, **news, "running": True})
        _progress(f"prometheus is not running; restarting it on port {port}")
        stop(ref, grace=5)
        return UpdateResult(self._start(news, port))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        if "pid" in props:
            stop(ProcessRef.from_dict(props))
        stack_ports(props).release(PORT_OWNER)
        shutil.rmtree(_folder(props), ignore_errors=True)


class LocalPrometheus(pulumi.dynamic.Resource, module="local", name="Prometheus"):
    url: pulumi.Output[str]
    port: pulumi.Output[int]
    pid: pulumi.Output[int]
    running: pulumi.Output[bool]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        outs = {"url": None, "port": None, "pid": None, "started": None, "log": None, "running": True}
        super().__init__(PrometheusProvider(), name, {**outs, **props}, opts)


def build_monitoring(component: MonitoringStackOutputs, name: str, args: MonitoringStackArgs) -> None:
    """A local MonitoringStack: one Prometheus for every endpoint of the stack."""
    ctx = args.context
    local = ctx.settings.local
    rules = prometheus_rules(list(args.deployments.values()), rate_window=RULE_WINDOW, for_="0s", drift=True)
    targets: dict[str, pulumi.Output[list[str]]] = {
        model: endpoint.metrics_targets
        for model, endpoint in sorted(args.endpoints.items())
        if endpoint.metrics_targets is not None
    }
    config = (
        pulumi.Output.all(**targets).apply(lambda t: yaml.safe_dump(prometheus_config(dict(t)), sort_keys=False))
        if targets
        else pulumi.Output.from_input(yaml.safe_dump(prometheus_config({}), sort_keys=False))
    )
    prometheus = LocalPrometheus(
        f"{name}-prometheus",
        {
            "state_dir": str((ctx.root / local.state_dir).resolve()),
            "base_port": local.base_port,
            "port_span": PORT_SPAN,
            "health_timeout": float(local.health_timeout_seconds),
            "config": config,
            "rules": yaml.safe_dump(rules, sort_keys=False),
            "dashboard": dashboard_json(),  # the committed components/dashboards/llm-serving.json
        },
        pulumi.ResourceOptions(parent=component),
    )
    component.prometheus_url = prometheus.url
    records = pulumi.Output.all(evaluations=args.evaluations, lineage=args.lineage).apply(
        lambda r: records_json(
            ctx.stack, ctx.settings.environment, ctx.root.resolve(), served_models(args.deployments), **r
        )
    )
    dashboard = LocalDashboard(
        f"{name}-dashboard",
        {
            "state_dir": str((ctx.root / local.state_dir).resolve()),
            "base_port": local.base_port,
            "port_span": PORT_SPAN,
            "health_timeout": float(local.health_timeout_seconds),
            "root": str(ctx.root.resolve()),
            "prometheus_url": prometheus.url,
            "records": records,
        },
        pulumi.ResourceOptions(parent=component),
    )
    component.dashboard_url = dashboard.url
