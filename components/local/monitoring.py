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

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pulumi
import yaml
from pulumi.dynamic import CheckFailure, CheckResult, UpdateResult

from components.contracts import MonitoringStackArgs, MonitoringStackOutputs
from components.local.dashboard import LocalDashboard, records_json, served_models
from components.local.drift import DRIFT_TARGETS
from components.local.model_monitoring import MODEL_RULES, SERVING_TARGETS, ModelMonitoring
from components.local.port_server import PORT_SPAN, SERVER_OUTPUTS, PortServerProvider, launch, progress
from components.local.process import StartError
from llmops.observability import dashboard_json, prometheus_rules

SCRAPE_INTERVAL = "2s"  # short, so local alerts and tests react within seconds
RULE_WINDOW = "30s"  # rate window of the SLO rules: a few scrapes, not the 5m a cluster uses
CONFIG_FILE, RULES_FILE, DASHBOARD_FILE = "prometheus.yml", "rules.yml", "grafana-dashboard.json"
PORT_OWNER = "prometheus"
NO_PROMETHEUS = "no `prometheus` on PATH: run `make setup` (Debian package prometheus)"


def prometheus_config(targets: dict[str, list[str]], scrape_interval: str = SCRAPE_INTERVAL) -> dict[str, Any]:
    """Scrape every endpoint's front end (`model` label per target), evaluate the rule file."""
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        # Split over stacks (llmops.layout), each model stack adds its own rule file and target.
        "rule_files": [RULES_FILE, f"{MODEL_RULES}/*.yml"],
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
                "file_sd_configs": [{"files": [f"{SERVING_TARGETS}/*.json"], "refresh_interval": "5s"}],
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


class PrometheusProvider(PortServerProvider):
    inputs = ("config", "rules", "dashboard", "health_timeout")

    def port_owner(self, props: dict[str, Any]) -> str:
        return PORT_OWNER

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        if shutil.which("prometheus") is None:
            failures.append(CheckFailure("prometheus", NO_PROMETHEUS))
        return CheckResult(news, failures)

    def _start(self, props: dict[str, Any], port: int) -> dict[str, Any]:
        folder = _write_checked(props)
        binary = shutil.which("prometheus")
        if binary is None:
            raise StartError(NO_PROMETHEUS)
        argv = [
            binary,
            f"--config.file={folder / CONFIG_FILE}",
            f"--storage.tsdb.path={folder / 'data'}",
            "--storage.tsdb.retention.time=2d",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ]
        outs = launch(
            props, port, argv, log=folder / "prometheus.log", cwd=folder, health_path="/-/ready", what="prometheus"
        )
        (folder / "prometheus.pid").write_text(f"{outs['pid']}\n")
        progress(f"prometheus: serving on {outs['url']}")
        return outs

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        # A running server reloads its configuration in place: no scrape gap, no lost samples.
        if self.alive({**olds, "running": True}):
            _write_checked(news)
            reloaded = httpx.post(f"http://127.0.0.1:{int(olds['port'])}/-/reload", timeout=30)
            if reloaded.status_code != 200:
                raise StartError(f"prometheus did not reload its configuration: {reloaded.text[:500]}")
            progress("prometheus: configuration reloaded")
            return UpdateResult({**olds, **news, "running": True})
        progress(f"prometheus is not running; restarting it on port {int(olds['port'])}")
        return super().update(id_, olds, news)

    def cleanup(self, props: dict[str, Any]) -> None:
        shutil.rmtree(_folder(props), ignore_errors=True)


class LocalPrometheus(pulumi.dynamic.Resource, module="local", name="Prometheus"):
    url: pulumi.Output[str]
    port: pulumi.Output[int]
    pid: pulumi.Output[int]
    running: pulumi.Output[bool]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(PrometheusProvider(), name, {**SERVER_OUTPUTS, **props}, opts)


def build_monitoring(component: MonitoringStackOutputs, name: str, args: MonitoringStackArgs) -> None:
    """A local MonitoringStack: one Prometheus for every endpoint of the stack; a model stack's
    share of its environment's Prometheus and dashboard (components/local/model_monitoring.py)."""
    ctx = args.context
    local = ctx.settings.local
    if ctx.part == "model":
        _model_monitoring(component, name, args)
        return
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


def _model_monitoring(component: MonitoringStackOutputs, name: str, args: MonitoringStackArgs) -> None:
    """A model stack's target, rules and records, in its environment's monitoring folders."""
    ctx = args.context
    cluster = args.cluster
    prometheus_url = getattr(cluster, "prometheus_url", None)
    for model, endpoint in sorted(args.endpoints.items()):
        deployment = args.deployments[model]
        rules = prometheus_rules([deployment], rate_window=RULE_WINDOW, for_="0s", drift=True)
        records = pulumi.Output.all(evaluations=args.evaluations.get(model), lineage=args.lineage.get(model)).apply(
            lambda r, m=model, d=deployment: json.dumps(
                {
                    "models": served_models({m: d}),
                    **{kind: {m: value} for kind, value in r.items() if value is not None},
                },
                sort_keys=True,
                default=str,
            )
        )
        ModelMonitoring(
            f"{name}-{model}",
            {
                "model": model,
                "state_dir": str((ctx.root / ctx.settings.local.state_dir).resolve()),
                "targets": endpoint.metrics_targets or [],
                "rules": yaml.safe_dump(rules, sort_keys=False),
                "records": records,
                "prometheus_url": prometheus_url,
            },
            pulumi.ResourceOptions(parent=component),
        )
    component.prometheus_url = prometheus_url
