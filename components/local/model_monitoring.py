"""A model stack's share of its environment's local monitoring (llmops.layout, `layout: split`).

The environment's platform stack runs the one Prometheus and the one dashboard; a model
stack cannot change their inputs without changing that stack. So each model stack writes
its own files where they look, in the environment's state folder:

- `monitoring/serving-targets/<model>.json`: the front's scrape target, found by the
  Prometheus file discovery job that drift monitors use too;
- `monitoring/rules.d/<model>.yml`: the model's SLO and drift alert rules (checked by
  `promtool` first), loaded by the `rule_files` glob on a hot reload (`POST /-/reload`);
- `dashboard/records.d/<model>.json`: what the dashboard shows of the model (versions,
  thresholds, evaluation results, lineage), merged into its records on every request.

Delete removes the three files and reloads, so a model retired from the environment
leaves no target, rule or page behind.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

from components.local.process import StartError
from llmops.dashboard.views import MODEL_RECORDS  # under <state_dir>/dashboard/, read by the dashboard

SERVING_TARGETS = "serving-targets"  # under <state_dir>/monitoring/
MODEL_RULES = "rules.d"  # under <state_dir>/monitoring/
_INPUTS = ("model", "state_dir", "targets", "rules", "records", "prometheus_url")


def _files(props: dict[str, Any]) -> tuple[Path, Path, Path]:
    state, model = Path(props["state_dir"]), props["model"]
    return (
        state / "monitoring" / SERVING_TARGETS / f"{model}.json",
        state / "monitoring" / MODEL_RULES / f"{model}.yml",
        state / "dashboard" / MODEL_RECORDS / f"{model}.json",
    )


def _replace(path: Path, text: str) -> None:
    """Write atomically: Prometheus and the dashboard read these files while they change."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _check_rules(text: str, where: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        return
    candidate = where.with_name(f".{where.name}.check.yml")
    candidate.parent.mkdir(parents=True, exist_ok=True)
    candidate.write_text(text)
    try:
        result = subprocess.run(
            [promtool, "check", "rules", str(candidate)], capture_output=True, text=True, timeout=60
        )
    finally:
        candidate.unlink(missing_ok=True)
    if result.returncode != 0:
        raise StartError(f"promtool rejected the rules of {where.stem}:\n{result.stdout}{result.stderr}")


def _reload(props: dict[str, Any]) -> None:
    """Have the environment's Prometheus read the rule files again (targets it finds by itself)."""
    url = props.get("prometheus_url")
    if not url:
        return
    try:
        httpx.post(f"{url}/-/reload", timeout=30).raise_for_status()
    except httpx.HTTPError as exc:
        # Its next start reads the files anyway; a model's deploy does not fail on its monitoring.
        print(f"prometheus at {url} did not reload ({exc}); the rules load at its next start", flush=True)


def _write(props: dict[str, Any]) -> None:
    targets, rules, records = _files(props)
    _check_rules(props["rules"], rules)
    _replace(targets, json.dumps([{"targets": sorted(props["targets"]), "labels": {"endpoint": props["model"]}}]))
    _replace(rules, props["rules"])
    _replace(records, props["records"])
    _reload(props)


class ModelMonitoringProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        _write(props)
        return CreateResult(f"{props['model']}-monitoring", props)

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in _INPUTS if olds.get(k) != news.get(k)]
        missing = not all(p.is_file() for p in _files(olds)) if olds.get("state_dir") else False
        return DiffResult(
            changes=bool(changed) or missing,
            replaces=[k for k in ("model", "state_dir") if k in changed],
            delete_before_replace=True,
        )

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        _write(news)
        return UpdateResult(news)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        for path in _files(props):
            path.unlink(missing_ok=True)
        _reload(props)


class ModelMonitoring(pulumi.dynamic.Resource, module="local", name="ModelMonitoring"):
    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(ModelMonitoringProvider(), name, props, opts)
