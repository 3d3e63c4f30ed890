"""Enforcement levels per environment, and the offline evaluator the mocks tests use.

Proves: every shipped stack maps to a shipped `policies/config/<environment>.json`
whose default level equals the stack file's `llmops:policy.enforcement`; the
files name only real policies and levels; a disagreement or a missing file is a
one-line error; `policies.evaluate` applies those levels (dev advisory, staging
budget advisory, prod mandatory, disabled skipped) and shapes properties as the
engine does. Cannot prove: that the engine reads the files the same way
(tests/policy/test_pack_engine.py runs the real CLI with them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llmops.settings import load_all_stacks
from policies import config_for_stack
from policies.enforcement import CONFIG_DIR, PolicyConfigError, check_config, load_config, main
from policies.evaluate import Resource, engine_shape, evaluate
from policies.facts import ENDPOINT, PLATFORM
from policies.policy_set import build_policies
from tests.policy.conftest import REPO, endpoint_props, model_entry, passing_record, platform_props, stack_settings

pytestmark = pytest.mark.policy

POLICY_NAMES = [p.name for p in build_policies()]


def test_policy_names_are_unique() -> None:
    assert len(POLICY_NAMES) == len(set(POLICY_NAMES)) == 17


@pytest.mark.parametrize("stack", sorted(load_all_stacks(REPO / "stacks")))
def test_every_stack_has_a_config_that_agrees_with_its_stack_file(stack: str) -> None:
    settings = load_all_stacks(REPO / "stacks")[stack]
    path = config_for_stack(stack, REPO / "stacks")
    assert path == CONFIG_DIR / f"{settings.environment}.json"
    assert load_config(path)["all"] == settings.policy.enforcement


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.json")), ids=lambda p: p.name)
def test_shipped_configs_name_real_policies_and_levels(path: Path) -> None:
    assert check_config(load_config(path), POLICY_NAMES, path.name) == []


def test_check_config_reports_typos() -> None:
    problems = check_config(
        {"all": "mandatory", "stack-budgit": "advisory", "required-tags": "strict"}, POLICY_NAMES, "x"
    )
    assert problems == [
        "x: 'stack-budgit' is not a policy of the pack",
        "x: required-tags: unknown enforcement level 'strict' (use one of advisory, mandatory, remediate, disabled)",
    ]


def _stacks(tmp_path: Path, environment: str, enforcement: str) -> Path:
    config = {"llmops:target": "aws", "llmops:environment": environment, "llmops:policy": {"enforcement": enforcement}}
    (tmp_path / "Pulumi.s.yaml").write_text(yaml.safe_dump({"config": config}))
    return tmp_path


def test_disagreeing_stack_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyConfigError, match=r"llmops:policy\.enforcement is 'advisory' but .*prod\.json sets"):
        config_for_stack("s", _stacks(tmp_path, "prod", "advisory"))


def test_environment_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyConfigError, match=r"add policies/config/qa.json"):
        config_for_stack("s", _stacks(tmp_path, "qa", "mandatory"))


def test_cli_prints_the_path_or_one_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_ROOT", str(REPO))
    assert main(["prod"]) == 0
    assert capsys.readouterr().out.strip() == str(CONFIG_DIR / "prod.json")
    assert main(["no-such-stack"]) == 1
    assert capsys.readouterr().err.startswith("policies: no stack file")


# --------------------------------------------------------------------------- evaluate


def _over_budget_stack(environment: str, production: bool) -> list[Resource]:
    settings = stack_settings(environment=environment, production=production, budgetMonthlyUsd=100)
    return [Resource(PLATFORM, "llmops", platform_props(settings, cost=250.0))]


@pytest.mark.parametrize(
    ("environment", "production", "level"),
    [("dev", False, "advisory"), ("staging", False, "advisory"), ("prod", True, "mandatory")],
)
def test_levels_follow_the_environment_config(environment: str, production: bool, level: str) -> None:
    config = json.loads((CONFIG_DIR / f"{environment}.json").read_text())
    [violation] = evaluate(_over_budget_stack(environment, production), config)
    assert (violation.policy, violation.level) == ("stack-budget", level)


def test_without_config_the_pack_fails_closed() -> None:
    [violation] = evaluate(_over_budget_stack("prod", True))
    assert violation.level == "mandatory"


def test_disabled_policies_do_not_run() -> None:
    assert evaluate(_over_budget_stack("prod", True), {"all": "mandatory", "stack-budget": "disabled"}) == []


def test_evaluate_runs_resources_in_order_with_stack_limits() -> None:
    settings = stack_settings(quotas={"maxReplicasPerEndpoint": 1})
    endpoint = endpoint_props(settings, model_entry(lambda d: d["deployments"].update(prod={"max_replicas": 2})))
    endpoint["evaluationRecords"] = {"v1": [passing_record()]}
    resources = [
        Resource(PLATFORM, "llmops", platform_props(settings)),
        Resource(ENDPOINT, "llmops-tiny-chat", endpoint),
    ]
    [violation] = evaluate(resources)
    assert violation.policy == "autoscaling-bounds"
    assert violation.urn == "urn:pulumi:test::llmops::llmops:model_endpoint:ModelEndpoint::llmops-tiny-chat"
    assert str(violation).startswith(
        "[mandatory] autoscaling-bounds (llmops:model_endpoint:ModelEndpoint::llmops-tiny-chat)"
    )


def test_engine_shape_matches_the_analyzer() -> None:
    shaped = engine_shape({"replicas": 2, "evaluation": None, "nested": {"keep": 1, "drop": None}, "list": [1, "a"]})
    assert set(shaped) == {"replicas", "nested", "list"}
    assert shaped["replicas"] == 2.0 and isinstance(shaped["replicas"], float)
    assert set(shaped["nested"]) == {"keep"}
    assert list(shaped["list"]) == [1.0, "a"]


def test_the_pack_readme_documents_every_policy() -> None:
    readme = (REPO / "policies" / "README.md").read_text()
    assert [name for name in POLICY_NAMES if f"| `{name}` |" not in readme] == []
