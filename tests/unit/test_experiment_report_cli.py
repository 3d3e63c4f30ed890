"""`llmops experiment report`, the installed console script, on a real Prometheus: harm rolls back early.

The scenario of a canary that users clearly rate worse: 50/50 traffic, v1 rated 90 %
positive on 153 ratings, v2 50 % on 147, with `min_samples` at its default of 200. The
front's series (route weights, requests, latency, ratings) end a few seconds before the
command runs, in a copy of the registry where tiny-chat serves that split locally.

Proves: the report read from Prometheus through the console script, in a fresh
environment, is ROLLBACK by the `harm` rule, below `min_samples`, with the feedback
test's p below the corrected alpha, both with `feedback` listed in `rollout.metrics`
and with no metrics listed (feedback then joins as a guardrail); the text report names
the rule; equal ratings on the same counts are inconclusive by `insufficient-data` when
feedback is listed, and a promote under the defaults, where too few ratings never hold
a promote. Cannot prove: that the live front exports these series (the e2e test does).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.prometheus import serve_openmetrics

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
LLMOPS = Path(sys.executable).parent / "llmops"  # the installed console script
MODEL, ROUTE = "tiny-chat", "/v1/chat/completions"
STEP, STEPS = 15, 41  # ten minutes of samples, 15 s apart
REQUESTS = 1000  # per variant over the window: error rate and latency are clean and past min_samples
# version -> (ratings, positive) at the window's end: v2 rated 50 % against v1's 90 %, or as well.
WORSE = {"v1": (153, 138), "v2": (147, 74)}
EQUAL = {"v1": (153, 138), "v2": (147, 132)}


def openmetrics(end: int, ratings_by_version: dict[str, tuple[int, int]]) -> str:
    families: dict[str, tuple[str, list[str]]] = {
        name: (kind, [])
        for name, kind in (
            ("llmops_route_weight", "gauge"),
            ("llmops_requests", "counter"),
            ("llmops_request_errors", "counter"),
            ("llmops_request_duration_seconds", "histogram"),
            ("llmops_feedback", "counter"),
            ("llmops_feedback_positive", "counter"),
        )
    }
    for i in range(STEPS):
        ts, share = end - (STEPS - 1 - i) * STEP, i / (STEPS - 1)
        for version, (ratings, positive) in ratings_by_version.items():
            labels = f'model="{MODEL}",version="{version}"'
            route = f'{labels},route="{ROUTE}"'
            n = round(REQUESTS * share)
            families["llmops_route_weight"][1].append(f"llmops_route_weight{{{labels}}} 50 {ts}")
            families["llmops_requests"][1].append(f'llmops_requests_total{{{route},code="200"}} {n} {ts}')
            families["llmops_request_errors"][1].append(f"llmops_request_errors_total{{{route}}} 0 {ts}")
            latency = families["llmops_request_duration_seconds"][1]
            for le, part in (("0.05", 0.3), ("0.1", 0.8), ("0.25", 1.0), ("+Inf", 1.0)):
                latency.append(f'llmops_request_duration_seconds_bucket{{{route},le="{le}"}} {round(n * part)} {ts}')
            latency.append(f"llmops_request_duration_seconds_count{{{route}}} {n} {ts}")
            latency.append(f"llmops_request_duration_seconds_sum{{{route}}} {0.07 * n} {ts}")
            families["llmops_feedback"][1].append(f"llmops_feedback_total{{{labels}}} {round(ratings * share)} {ts}")
            families["llmops_feedback_positive"][1].append(
                f"llmops_feedback_positive_total{{{labels}}} {round(positive * share)} {ts}"
            )
    lines = [line for name, (kind, samples) in families.items() for line in (f"# TYPE {name} {kind}", *samples)]
    return "\n".join(lines) + "\n# EOF\n"


@contextmanager
def prometheus(tmp: Path, ratings_by_version: dict[str, tuple[int, int]]) -> Iterator[str]:
    # The last scrape a few seconds ago: the report reads up to now, within Prometheus' 5-minute lookback.
    with serve_openmetrics(openmetrics(int(time.time()) - 5, ratings_by_version), tmp / "prom") as url:
        yield url


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The registry and stack files of this repository, nothing else."""
    root = tmp_path / "checkout"
    root.mkdir()
    shutil.copy(REPO / "Pulumi.yaml", root / "Pulumi.yaml")
    shutil.copytree(REPO / "stacks", root / "stacks")
    shutil.copytree(REPO / "models", root / "models")
    return root


def serve(root: Path, rollout: dict[str, Any]) -> None:
    path = root / "models" / f"{MODEL}.yaml"
    entry = yaml.safe_load(path.read_text())
    entry["versions"]["v2"] = {"local": "checkpoints/v2"}  # declared, as every served version must be
    entry["deployments"]["local"] = {
        "variants": [{"version": "v1", "weight": 50}, {"version": "v2", "weight": 50}],
        "rollout": rollout,
    }
    path.write_text("# yaml-language-server: $schema=schema.json\n" + yaml.safe_dump(entry, sort_keys=False))


def report(root: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """As a user runs it: the console script, a fresh login environment, from a subfolder."""
    env = {"HOME": os.environ.get("HOME", str(root)), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    args = ["experiment", "report", "--stack", "local", "--model", MODEL, "--prometheus-url", url]
    result = subprocess.run(
        [str(LLMOPS), *args, "--window", "3600", *extra],
        cwd=root / "models",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.parametrize(
    "rollout",
    [{"metrics": ["error_rate", "latency", "feedback"]}, {}],
    ids=["feedback-listed", "default-metrics"],
)
def test_a_clearly_worse_rated_canary_rolls_back_below_min_samples(checkout: Path, rollout: dict[str, Any]) -> None:
    serve(checkout, rollout)
    with prometheus(checkout.parent, WORSE) as url:
        out = json.loads(report(checkout, url, "--json").stdout)
        text = report(checkout, url).stdout
    assert [(v["version"], v["feedback"]) for v in out["variants"]] == [("v1", 153), ("v2", 147)]
    assert out["min_samples"] == 200
    assert out["verdict"] == "rollback" and out["rule"] == "harm", out["reasons"]
    feedback = next(m for m in out["canaries"][0]["metrics"] if m["metric"] == "feedback")
    assert feedback["verdict"] == "rollback"
    assert (feedback["n_baseline"], feedback["n_canary"]) == (153, 147)
    assert feedback["p_value"] < 1e-10 < out["alpha_per_test"]
    assert out["alpha_per_test"] == pytest.approx(0.05 / (24 * 3))  # the same divisor listed or by default
    assert feedback["role"] == ("gate" if rollout else "guardrail")
    assert [m["verdict"] for m in out["canaries"][0]["metrics"] if m["metric"] != "feedback"] == ["promote"] * 2
    assert "VERDICT: ROLLBACK (rule harm:" in text and "before min_samples (200)" in text


def test_equal_ratings_below_min_samples_hold_a_listed_gate_but_not_a_guardrail(checkout: Path) -> None:
    with prometheus(checkout.parent, EQUAL) as url:
        serve(checkout, {"metrics": ["error_rate", "latency", "feedback"]})
        listed = json.loads(report(checkout, url, "--json").stdout)
        serve(checkout, {})
        default = json.loads(report(checkout, url, "--json").stdout)
    assert listed["verdict"] == "inconclusive" and listed["rule"] == "insufficient-data"
    assert any("feedback: too few ratings to promote" in r for r in listed["reasons"]), listed["reasons"]
    assert default["verdict"] == "promote" and default["rule"] == "all-pass", default["reasons"]
    feedback = next(m for m in default["canaries"][0]["metrics"] if m["metric"] == "feedback")
    assert feedback["role"] == "guardrail" and feedback["verdict"] == "inconclusive"
