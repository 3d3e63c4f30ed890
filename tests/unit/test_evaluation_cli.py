"""`llmops eval run` and `llmops model-card` on a copy of the registry, with cached records.

Proves: the command measures the artifact the registry's current training inputs produced
(found through the store's training cache), judges every gate, prints
`{suite: {metric: {value, threshold, passed}}}` with --json and exits 1 when a gate fails;
an untrained model and a hosted one get one-line reasons; the card is written where the
registry points and then checks fresh. Records come from the cache, so no model runs here
(tests/engine/test_evaluation.py runs lm-eval for real).
"""

from __future__ import annotations

import json
import shutil
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops.cli import main
from llmops.datasets.lineage import training_file
from llmops.evaluation.cache import CACHE_DIR, RecordCache
from llmops.evaluation.record import EvaluationRecord
from llmops.evaluation.suites import load_suite
from llmops.local.store import STORE_DIR, ArtifactStore
from llmops.local.train import inputs_key
from llmops.registry import Dataset
from tests.support.project import REPO

pytestmark = pytest.mark.unit

VALUES = {
    "tiny-chat-heldout": {"bits_per_byte": 0.5},
    "tiny-chat-tasks": {"exact_match": 0.1},  # below its 0.15 threshold
    "tiny-chat-fairness": {"max_group_gap": 0.0},
    "tiny-chat-safety": {"violation_rate": 0.0},
}


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for folder in ("models", "stacks"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    (tmp_path / "Pulumi.yaml").write_text((REPO / "Pulumi.yaml").read_text())
    monkeypatch.setenv("LLMOPS_ROOT", str(tmp_path))
    return tmp_path


def _trained(root: Path) -> str:
    """An artifact stored under tiny-chat's current training inputs, with records of every suite."""
    entry = yaml.safe_load((root / "models" / "tiny-chat.yaml").read_text())
    config = json.loads((root / "models" / "configs" / "tiny-chat.json").read_text())
    data = training_file(root, Dataset(**entry["training"]["dataset"]))
    assert data is not None
    key = inputs_key(config, data[1], entry["training"]["hyperparameters"])
    store = ArtifactStore(root / STORE_DIR)
    work = root / "artifact"
    work.mkdir()
    (work / "config.json").write_text("{}")
    sha = store.put(work)
    store.remember(key, sha)
    cache = RecordCache(root / CACHE_DIR)
    for suite, metrics in VALUES.items():
        cache.put(
            EvaluationRecord(
                suite=suite,
                suite_sha256=load_suite(root / "models", suite).sha256,
                model="tiny-chat",
                weights=sha,
                lm_eval_version=version("lm_eval"),
                evaluated_at="2026-11-30T12:00:00+00:00",
                where="host:test",
                seconds=1.0,
                metrics=metrics,
                examples=10,
                worst=[{"input": "What is the opposite of new?", "response": "old", "target": "The opposite"}],
            )
        )
    return sha


def test_json_summary_and_exit_status(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _trained(root)
    assert main(["eval", "run", "tiny-chat", "--json"]) == 1
    summary: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert summary["tiny-chat-tasks"]["exact_match"] == {"value": 0.1, "threshold": 0.15, "passed": False}
    assert summary["tiny-chat-safety"]["violation_rate"] == {"value": 0.0, "threshold": 0.1, "passed": True}
    assert set(summary) == set(VALUES)

    assert main(["eval", "run", "tiny-chat", "--suite", "tiny-chat-safety"]) == 0
    assert "gate tiny-chat-safety/violation_rate: measured 0, needs <= 0.1" in capsys.readouterr().out
    assert main(["eval", "run", "tiny-chat", "--suite", "tiny-chat-tasks"]) == 1
    out = capsys.readouterr().out
    assert "exact_match 0.1 misses the threshold 0.15" in out and "worst: 'What is the opposite of new?'" in out


def test_untrained_and_hosted_models_get_one_line_reasons(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "run", "tiny-chat"]) == 1
    assert "has not been trained with its current registry inputs on this machine" in capsys.readouterr().err
    assert main(["eval", "run", "llama-3-1-8b-instruct"]) == 1
    assert "hosted endpoints are evaluated by `llmops ci deploy` on staging" in capsys.readouterr().err


def test_the_card_is_written_where_the_registry_points_and_checks_fresh(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (root / "docs" / "model-cards").mkdir(parents=True)
    _trained(root)
    assert main(["model-card", "tiny-chat", "--write"]) == 0
    card = (root / "docs" / "model-cards" / "tiny-chat.md").read_text()
    assert "| tiny-chat-tasks | exact_match | ≥ 0.15 | 0.1 | 0.1 | **no** |" in card
    assert main(["model-card", "tiny-chat", "--check"]) == 0
    (root / "models" / "evals" / "tiny-chat-safety" / "requests.jsonl").write_text("")
    assert main(["model-card", "tiny-chat", "--check"]) == 1
    assert "suite tiny-chat-safety changed since it was measured" in capsys.readouterr().err
