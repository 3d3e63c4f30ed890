"""Evaluation core without a model: gates, the record cache, model cards, the fairness aggregation.

Proves: a gate fails on its threshold and on a regression against the serving version
(either direction), and explains both with the worst examples; records are cached by
(weights, suite sha256, lm-eval version) and by nothing else; the suite hash follows the
suite's content; every model card the registry keeps in this repository exists and is
fresh, and an edited registry or suite makes it stale; the fairness probe's gap is the
distance between groups. Cannot prove: lm-eval's numbers on a real model
(tests/engine/test_evaluation.py runs them).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import pytest

from llmops.evaluation.cache import RecordCache
from llmops.evaluation.cards import render_card, stale_reasons
from llmops.evaluation.gates import judge, judge_all, summary
from llmops.evaluation.record import EvaluationRecord
from llmops.evaluation.suites import SuiteError, load_suite
from llmops.registry import EvaluationGate, load_registry
from llmops.settings import load_all_stacks
from tests.support.project import REPO

pytestmark = pytest.mark.unit


def record(suite: str = "s", weights: str = "w" * 64, **metrics: float) -> EvaluationRecord:
    return EvaluationRecord(
        suite=suite,
        suite_sha256="a" * 64,
        model="m",
        weights=weights,
        lm_eval_version="0.4.13",
        evaluated_at="2026-11-30T12:00:00+00:00",
        where="host:test",
        seconds=1.0,
        metrics=metrics,
        examples=3,
        worst=[{"input": "q?", "response": "nope", "target": "yes", "score": 0.0}],
    )


def gate(**values: Any) -> EvaluationGate:
    return EvaluationGate.model_validate({"suite": "s", "metric": "acc", "threshold": 0.5, **values})


def test_threshold_either_direction() -> None:
    assert judge(gate(), record(acc=0.5)).passed
    assert not judge(gate(), record(acc=0.49)).passed
    loss = gate(metric="loss", threshold=1.0, higher_is_better=False)
    assert judge(loss, record(loss=0.9)).passed and not judge(loss, record(loss=1.1)).passed


def test_regression_against_the_serving_version_and_the_explanation() -> None:
    g = gate(max_regression_vs_serving=0.05)
    assert judge(g, record(acc=0.78), record(acc=0.8, weights="o" * 64)).passed
    verdict = judge(g, record(acc=0.7), record(acc=0.8, weights="o" * 64))
    assert not verdict.passed
    text = verdict.explain()
    assert "gate s/acc: measured 0.7, needs >= 0.5; serving version: 0.8 -- FAILED" in text
    assert "0.1 worse than the serving version (0.8), more than max_regression_vs_serving 0.05" in text
    assert "worst: 'q?' -> 'nope' (expected 'yes')" in text
    lower = gate(metric="loss", threshold=2.0, higher_is_better=False, max_regression_vs_serving=0.1)
    assert not judge(lower, record(loss=1.3), record(loss=1.1)).passed


def test_missing_suite_or_metric_fails_and_summary_shape() -> None:
    assert judge(gate(), None).reasons == ["no evaluation of suite s"]
    assert "reports no metric 'acc' (it reports: f1)" in judge(gate(), record(f1=1.0)).reasons[0]
    verdicts = judge_all([gate(), gate(metric="f1", threshold=0.9)], {"s": record(acc=0.6, f1=0.8)})
    assert summary(verdicts) == {
        "s": {
            "acc": {"value": 0.6, "threshold": 0.5, "passed": True},
            "f1": {"value": 0.8, "threshold": 0.9, "passed": False},
        }
    }


def test_cache_is_keyed_by_weights_suite_and_harness_version(tmp_path: Path) -> None:
    cache = RecordCache(tmp_path)
    cache.put(record(acc=0.7))
    assert cache.get("w" * 64, "a" * 64, "0.4.13") == record(acc=0.7)
    assert cache.get("x" * 64, "a" * 64, "0.4.13") is None
    assert cache.get("w" * 64, "b" * 64, "0.4.13") is None
    assert cache.get("w" * 64, "a" * 64, "0.4.14") is None
    assert cache.latest("m") == {"s": record(acc=0.7)}


def test_suite_hash_follows_its_content(tmp_path: Path) -> None:
    models = tmp_path / "models"
    # The suite as git holds it: an engine test running lm-eval beside this one may have left a
    # __pycache__ in the checkout's copy.
    source = REPO / "models" / "evals" / "tiny-chat-safety"
    shutil.copytree(source, models / "evals" / "tiny-chat-safety", ignore=shutil.ignore_patterns("__pycache__"))
    suite = load_suite(models, "tiny-chat-safety")
    before = suite.sha256
    (suite.path / "__pycache__").mkdir()
    (suite.path / "__pycache__" / "utils.pyc").write_bytes(b"cache")
    assert suite.sha256 == before
    with (suite.path / "requests.jsonl").open("a") as fh:
        fh.write('{"id": 99, "request": "x", "refusal": "no", "forbidden": []}\n')
    assert suite.sha256 != before
    with pytest.raises(SuiteError, match="no suite 'nope'"):
        load_suite(models, "nope")


def test_every_model_card_in_the_repository_exists_and_is_fresh() -> None:
    registry = load_registry(REPO / "models", load_all_stacks(REPO / "stacks"))
    local = [m for m in registry.models.values() if "://" not in m.compliance.model_card]
    assert local, "no model keeps its card in this repository"
    for entry in local:
        assert stale_reasons(REPO, entry) == [], (
            f"{entry.compliance.model_card}: run `llmops model-card {entry.name} --write`"
        )


def test_a_registry_or_suite_change_makes_the_card_stale(tmp_path: Path) -> None:
    registry = load_registry(REPO / "models", load_all_stacks(REPO / "stacks"))
    entry = registry.models["tiny-chat"]
    root = tmp_path
    shutil.copytree(REPO / "models", root / "models")
    shutil.copytree(REPO / "docs", root / "docs")
    assert stale_reasons(root, entry) == []
    edited = entry.model_copy(update={"description": "Something else."})
    assert any("differs from the registry" in r for r in stale_reasons(root, edited))
    # The card lists the registry's example prompts: another prompt makes it stale too.
    card = (root / "docs" / "model-cards" / "tiny-chat.md").read_text()
    assert "## Example prompts\n\n" + "".join(f'- "{p}"\n' for p in entry.examples) in card
    more = entry.model_copy(update={"examples": [*entry.examples, "Hello there"]})
    assert any("differs from the registry" in r for r in stale_reasons(root, more))
    with (root / "models" / "evals" / "tiny-chat-tasks" / "questions.jsonl").open("a") as fh:
        fh.write('{"id": 99, "question": "q", "answer": "a"}\n')
    assert any("suite tiny-chat-tasks changed" in r for r in stale_reasons(root, entry))
    (root / "docs" / "model-cards" / "tiny-chat.md").unlink()
    assert stale_reasons(root, entry) == ["missing: run `llmops model-card tiny-chat --write`"]
    assert "Not evaluated yet" in render_card(root, entry, {})


def _fairness() -> Any:
    spec = importlib.util.spec_from_file_location("fairness", REPO / "models/evals/tiny-chat-fairness/utils.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fairness_gap_is_the_distance_between_groups() -> None:
    f = _fairness()
    doc = {"answer": "Tuesday comes after Monday.", "pair": 0}

    def items(answers: dict[str, str]) -> list[dict[str, Any]]:
        return [f.process_results({**doc, "group": g}, [a])["max_group_gap"] for g, a in answers.items()]

    fair = items({"Kenya": "Tuesday comes after Monday", "Norway": "Tuesday comes after Monday."})
    assert f.max_group_gap(fair) == 0.0 and f.group_agreement(fair) == 1.0
    biased = items({"Kenya": "I cannot help with that.", "Norway": "Friday.", "India": "Friday."})
    assert f.max_group_gap(biased) == 1.0
    assert f.max_accuracy_gap(biased) == 0.0  # both wrong: accuracy alone would miss it
