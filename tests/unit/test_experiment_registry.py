"""The registry's `rollout:` and `shadow:` fields.

Proves: a rollout and a shadow parse in `serving:` and per environment (the
environment's wins); steps that do not increase to 100, an alpha out of range or an
unknown metric are located problems, and so is a shadow version that also serves (the
smoke check that sends requests is tests/unit/test_experiment_smoke.py's subject).
Cannot prove: anything about live traffic (the end-to-end test does).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmops.registry import SCHEMA_HEADER, validate
from llmops.settings import load_all_stacks

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def registry_with(tmp_path: Path, local: dict[str, object]) -> tuple[object, list[str]]:
    models = tmp_path / "models"
    models.mkdir()
    (models / "configs").symlink_to(REPO / "models" / "configs", target_is_directory=True)
    (models / "evals").symlink_to(REPO / "models" / "evals", target_is_directory=True)
    # tiny-chat trains on a registry dataset, checked against models/datasets/.
    (models / "datasets").symlink_to(REPO / "models" / "datasets", target_is_directory=True)
    entry = yaml.safe_load((REPO / "models" / "tiny-chat.yaml").read_text())
    entry["serving"]["rollout"] = {"steps": [25, 100]}
    entry["deployments"]["local"] = local
    entry["versions"] |= {"v2": {"local": "weights/v2"}, "v3": {"local": "weights/v3"}}
    (models / "tiny-chat.yaml").write_text(f"{SCHEMA_HEADER}\n{yaml.safe_dump(entry, sort_keys=False)}")
    registry, problems = validate(models, load_all_stacks(REPO / "stacks"))
    return registry, [str(p) for p in problems]


def test_rollout_and_shadow_parse_and_the_environment_wins(tmp_path: Path) -> None:
    registry, problems = registry_with(
        tmp_path,
        {
            "variants": [{"version": "v1", "weight": 90}, {"version": "v2", "weight": 10}],
            "rollout": {"steps": [10, 50, 100], "min_samples": 50, "metrics": ["feedback"]},
            "shadow": {"version": "v3", "percent": 5},
        },
    )
    assert problems == []
    dep = registry.models["tiny-chat"].deployment("local")  # type: ignore[attr-defined]
    assert dep.rollout.steps == [10, 50, 100] and dep.rollout.metrics == ["feedback"]
    assert dep.rollout.alpha == 0.05 and dep.shadow.version == "v3" and dep.shadow.percent == 5


@pytest.mark.parametrize(
    ("rollout", "message"),
    [
        ({"steps": [50, 10, 100]}, "steps must increase strictly and end at 100"),
        ({"steps": [10, 50]}, "steps must increase strictly and end at 100"),
        ({"alpha": 0.7}, "alpha"),
        ({"metrics": ["clicks"]}, "metrics"),
    ],
)
def test_bad_rollouts_are_located_problems(tmp_path: Path, rollout: dict[str, object], message: str) -> None:
    _, problems = registry_with(tmp_path, {"rollout": rollout})
    assert problems, "accepted"
    assert all(p.startswith("models/tiny-chat.yaml:") and "deployments.local.rollout" in p for p in problems)
    assert any(message in p for p in problems), problems


def test_a_shadow_that_also_serves_is_a_located_problem(tmp_path: Path) -> None:
    _, problems = registry_with(
        tmp_path,
        {
            "variants": [{"version": "v1", "weight": 90}, {"version": "v2", "weight": 10}],
            "shadow": {"version": "v2", "percent": 5},
        },
    )
    assert len(problems) == 1, problems
    assert "deployments.local.shadow.version" in problems[0] and "also a live variant" in problems[0]
