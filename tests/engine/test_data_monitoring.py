"""Capture, drift monitoring and lineage of the local target, through the real engine, on one throwaway stack.

One deployment (a copy of the project, its own backend, ports and state) trains
tiny-chat on its registry dataset, serves it with capture on (a small size bound)
and runs the scheduled drift monitor every 5 s; the stack's Prometheus scrapes the
monitor and evaluates the drift rule generated from the registry. In order:

1. The stack's `lineage` output names the dataset version, its md5s, the artifact
   and the endpoint version that serves it.
2. In-distribution traffic (prompts of the dataset's held-out split): the monitor
   judges it, `llmops_drift_detected` is 0 and no drift alert fires.
3. Shifted traffic (German prompts): LLMOpsDriftDetected fires in Prometheus within
   SHIFT_ALERT_SECONDS of the last request.
4. The capture folder stayed within its size bound throughout (files rotated).

Cannot prove: SageMaker's own capture (the AWS side is covered by mocks tests).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmops.datasets.records import read_records
from tests.support.project import REPO, Project, copy_project

pytestmark = [pytest.mark.engine, pytest.mark.timeout(1200)]

MODEL = "tiny-chat"
BOUND_BYTES = 96 * 1024  # capture.max_total_mb below: ~90 exchanges of this model
SHIFT_ALERT_SECONDS = 90  # monitor interval 5 s + a drift run + scrape and rule evaluation (2 s each), with room
GERMAN = [
    "Wie spät ist es heute Abend in Berlin, bitte?",
    "Welche Farbe hat der Himmel über den Bergen im Winter?",
    "Können Sie mir den Weg zum Hauptbahnhof erklären?",
    "Warum schmeckt der Kuchen meiner Großmutter so gut?",
    "Wann öffnet die Bäckerei am Sonntagmorgen?",
]


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = 1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (httpx.HTTPError, KeyError, ValueError, IndexError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


class Stack:
    def __init__(self, project: Project, name: str):
        self.project, self.name = project, name
        outputs = json.loads(project.pulumi("stack", "output", "--json", stack=name).stdout)
        self.outputs: dict[str, Any] = outputs
        self.url = outputs["endpoints"][MODEL]["url"]
        self.prometheus = outputs["prometheusUrl"]
        settings = yaml.safe_load((project.root / "stacks" / f"Pulumi.{name}.yaml").read_text())
        self.capture = project.root / settings["config"]["llmops:local"]["stateDir"] / "capture" / MODEL

    def ask(self, prompt: str) -> None:
        body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}
        r = httpx.post(f"{self.url}/v1/chat/completions", json=body, timeout=120)
        assert r.status_code == 200, r.text

    def query(self, expr: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
        return list(r.json()["data"]["result"])

    def drift_alerts(self) -> list[dict[str, Any]]:
        alerts = httpx.get(f"{self.prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "LLMOpsDriftDetected" and a["state"] == "firing"]

    def diagnostics(self) -> str:
        """What the monitor logged, what was captured and what Prometheus scrapes: for a failure message."""
        log = self.capture.parent.parent / "drift" / MODEL / "monitor.log"
        tail = log.read_text()[-3000:] if log.is_file() else "(no monitor log)"
        targets = httpx.get(f"{self.prometheus}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        health = [(t["scrapePool"], t["health"], t.get("lastError")) for t in targets]
        files = len(list(self.capture.rglob("*.jsonl")))
        return f"capture files: {files}; targets: {health}\nmonitor log tail:\n{tail}"

    def capture_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.capture.rglob("*.jsonl"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    project = copy_project(tmp_path_factory.mktemp("data-monitoring") / "project", REPO)

    def monitor_fast(entry: dict[str, Any]) -> None:
        entry["monitoring"]["capture"] = {"sample": 1.0, "max_file_mb": 0.01, "max_total_mb": BOUND_BYTES / (1 << 20)}
        entry["monitoring"]["drift"].update(interval_seconds=5, min_records=20)

    project.edit_model(MODEL, monitor_fast)
    name = project.local_stack("data-engine", healthTimeoutSeconds=180)
    try:
        project.pulumi("up", "--yes", "--skip-preview", stack=name, timeout=1100)
        yield Stack(project, name)
    finally:
        project.pulumi("destroy", "--yes", "--skip-preview", stack=name, check=False)
        project.pulumi("stack", "rm", "--yes", "--force", stack=name, check=False)


def test_lineage_output_names_dataset_artifact_and_endpoint(stack: Stack) -> None:
    training = yaml.safe_load((REPO / "models" / f"{MODEL}.yaml").read_text())["training"]
    ref = f"{training['dataset']['name']}@{training['dataset']['version']}"
    lineage = stack.outputs["lineage"][MODEL]
    assert lineage["dataset"]["ref"] == ref
    assert set(lineage["dataset"]["md5"]) == {"train", "eval", "held_out"}
    assert lineage["artifactSha256"] == stack.outputs["artifacts"][MODEL]["sha256"]
    assert lineage["endpoint"] == [{"name": MODEL, "version": "v1", "weight": 100}]
    assert lineage["hyperparameters"] == training["hyperparameters"]
    # The artifact itself carries the same record.
    store = Path(lineage["artifactUri"].removeprefix("file://"))
    assert json.loads((store / "lineage.json").read_text())["dataset"]["ref"] == ref


def test_in_distribution_traffic_raises_no_drift_alert(stack: Stack) -> None:
    held_out = REPO / "models/data/tiny-chat-corpus/held-out.txt"
    prompts = [t[1] for r in read_records(held_out) for t in r.turns() if t[0] == "U"]
    assert len(prompts) >= 40
    for prompt in prompts:
        stack.ask(prompt)
    sel = f'model="{MODEL}"'
    sent = time.time()
    # A run that ended well after the last request (a run takes seconds; the monitor waits 5 s between runs).
    judged = (
        f"llmops_drift_last_run_timestamp_seconds{{{sel}}} > {sent + 15:.0f} "
        f"and on(model) llmops_drift_records{{{sel}}} >= 40"
    )
    try:
        wait_for("a drift run over the traffic", lambda: stack.query(judged), 150)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.diagnostics()}") from None
    time.sleep(6)  # one more evaluation of the rule after the judged run
    [detected] = stack.query(f"llmops_drift_detected{{{sel}}}")
    assert detected["value"][1] == "0", stack.diagnostics()
    assert stack.drift_alerts() == []
    assert stack.capture_bytes() <= BOUND_BYTES


def test_shifted_traffic_fires_the_drift_alert(stack: Stack) -> None:
    for i in range(150):
        stack.ask(GERMAN[i % len(GERMAN)])
    sent = time.monotonic()
    try:
        firing = wait_for("LLMOpsDriftDetected firing", stack.drift_alerts, timeout=SHIFT_ALERT_SECONDS)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.diagnostics()}") from None
    assert firing[0]["labels"]["model"] == MODEL
    print(f"drift alert fired {time.monotonic() - sent:.0f}s after the last shifted request")
    assert stack.capture_bytes() <= BOUND_BYTES
    assert len(list(stack.capture.rglob("*.jsonl"))) > 1  # rotated
