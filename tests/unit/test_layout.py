"""Stack layouts (llmops.layout): names, derived settings, the stack file edit, promotion per model.

Proves: model stack names parse and bad ones are refused with the fix; a model stack's
settings are its environment's file narrowed to the model, and a model stack of a single
environment, or of a missing file, is a located error; split is refused where it cannot
apply; model stack files are never read as environments; `set_split_layout` adds one line
and keeps every comment, and says so when there is nothing to do; a model stack's secrets
keys come back from its state; a later environment's model stack waits for its own earlier
stacks only; a migration never applies a preview that deletes or replaces.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from llmops.ci.deploy import check_promoted, earlier_stacks, record_deployed
from llmops.ci.errors import CiError
from llmops.ci.runner import write_secrets_keys
from llmops.layout import (
    LayoutError,
    model_stack_settings,
    model_stacks,
    owned_by,
    parse_model_stack,
    part_of,
    stack_settings,
)
from llmops.migrate import set_split_layout
from llmops.plan import AffectedStack, Plan
from llmops.settings import StackSettings, load_all_stacks, stack_files

ENV_FILE = """\
# Production: kept comment.
secretsprovider: awskms://alias/llmops-prod?region=us-east-1
config:
  aws:region: us-east-1
  # the target
  llmops:target: aws
  llmops:environment: prod
"""


def _stacks(tmp_path: Path, text: str = ENV_FILE) -> Path:
    folder = tmp_path / "stacks"
    folder.mkdir()
    (folder / "Pulumi.prod.yaml").write_text(text)
    return folder


def test_model_stack_names() -> None:
    ref = parse_model_stack("prod.llama-3-1-8b-instruct")
    assert ref is not None and (ref.platform, ref.model, ref.name) == ("prod", "llama-3-1-8b-instruct", ref.name)
    assert parse_model_stack("prod") is None
    for bad in ("prod.", ".m", "prod.a.b"):
        with pytest.raises(LayoutError, match=r"<environment stack>\.<model>"):
            parse_model_stack(bad)


def test_a_model_stack_derives_its_settings_from_its_environment(tmp_path: Path) -> None:
    folder = _stacks(tmp_path)
    with pytest.raises(LayoutError, match=r"layout: single.*llmops migrate-stacks"):
        model_stack_settings(folder, "prod.m")
    set_split_layout(folder / "Pulumi.prod.yaml")
    ref, settings = model_stack_settings(folder, "prod.m")
    assert ref.model == "m" and settings.models == ["m"] and settings.environment == "prod"
    assert part_of("prod.m", settings) == "model" and stack_settings(folder, "prod.m") == settings
    with pytest.raises(LayoutError, match=r"no stacks/Pulumi\.dev\.yaml"):
        model_stack_settings(folder, "dev.m")
    with pytest.raises(LayoutError, match=r"no stack 'nope' \(stacks/: prod\)"):
        stack_settings(folder, "nope")


def test_split_applies_to_an_environment_stack_only() -> None:
    base = {"target": "aws", "environment": "prod", "layout": "split"}
    assert StackSettings.model_validate(base).layout == "split"
    for extra in ({"target": "kube"}, {"models": ["m"]}):
        with pytest.raises(ValidationError, match="layout: split applies"):
            StackSettings.model_validate({**base, **extra})
    single = StackSettings.model_validate({**base, "layout": "single"})
    assert model_stacks("prod", single, ["a"]) == []
    assert model_stacks("prod", StackSettings.model_validate(base), ["b", "a"]) == ["prod.a", "prod.b"]


def test_model_stack_files_are_not_environments(tmp_path: Path) -> None:
    folder = _stacks(tmp_path)
    (folder / "Pulumi.prod.m.yaml").write_text("encryptionsalt: v1:abc\n")
    assert list(stack_files(folder)) == ["prod"] and list(load_all_stacks(folder)) == ["prod"]


def test_set_split_layout_adds_one_line_and_keeps_the_comments(tmp_path: Path) -> None:
    path = _stacks(tmp_path) / "Pulumi.prod.yaml"
    assert set_split_layout(path) is True
    text = path.read_text()
    added = [line for line in text.splitlines() if line not in ENV_FILE.splitlines()]
    assert len(added) == 2 and added[1] == "  llmops:layout: split" and added[0].lstrip().startswith("#")
    assert [line for line in text.splitlines() if line not in added] == ENV_FILE.splitlines()
    assert yaml.safe_load(text)["config"]["llmops:layout"] == "split"
    assert set_split_layout(path) is False and path.read_text() == text
    # An explicit single layout is switched in place.
    path.write_text(ENV_FILE.replace("  llmops:target: aws\n", "  llmops:target: aws\n  llmops:layout: single\n"))
    assert set_split_layout(path) is True and "llmops:layout: split" in path.read_text()
    assert "single" not in path.read_text()


def test_owned_by_matches_whole_names_and_types() -> None:
    urns = [
        "urn:pulumi:prod::llmops::llmops:platform:Platform$llmops:model_endpoint:ModelEndpoint::llmops-a",
        "urn:pulumi:prod::llmops::llmops:platform:Platform$llmops:model_endpoint:ModelEndpoint::llmops-a-b",
        "urn:pulumi:prod::llmops::llmops:platform:Platform$llmops:training_job:TrainingJob::llmops-a-training",
        "urn:pulumi:prod::llmops::llmops:platform:Platform$llmops:gpu_cluster:GpuCluster::llmops-cluster",
    ]
    assert owned_by(urns, "a") == [urns[0], urns[2]]
    assert owned_by(urns, "a-b") == [urns[1]]


def test_secrets_keys_come_back_from_the_state(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.prod.m.yaml"
    write_secrets_keys(path, {"secrets_providers": {"type": "passphrase", "state": {"salt": "v1:s"}}})
    assert yaml.safe_load(path.read_text()) == {"encryptionsalt": "v1:s"}
    kms = {"type": "cloud", "state": {"url": "awskms://alias/llmops-prod", "encryptedkey": "abc"}}
    write_secrets_keys(path, {"secrets_providers": kms})
    assert yaml.safe_load(path.read_text()) == {"secretsprovider": "awskms://alias/llmops-prod", "encryptedkey": "abc"}
    path.unlink()
    write_secrets_keys(path, {})
    assert not path.exists()


def _plan(*names: str) -> Plan:
    stacks = [AffectedStack(n, n.split(".")[0], True) for n in names]
    return Plan("a", "b", "a", [], stacks, [], [], [])


def test_a_model_is_promoted_only_after_its_own_earlier_stacks(tmp_path: Path) -> None:
    plan = _plan("dev.a", "dev.b", "staging.a", "staging.b", "prod.a")
    prod_a = plan.stacks[4]
    assert earlier_stacks(plan, prod_a) == ["dev.a", "staging.a"]
    deployed = tmp_path / "deployed"
    record_deployed(plan.stacks[0], deployed)
    with pytest.raises(CiError, match=r"prod\.a: staging\.a did not deploy in this run, so a is not promoted"):
        check_promoted(plan, prod_a, deployed)
    check_promoted(plan, plan.stacks[2], deployed)  # staging.a: dev.a deployed; b's failure is not a's
    record_deployed(plan.stacks[2], deployed)
    check_promoted(plan, prod_a, deployed)
    check_promoted(plan, plan.stacks[1], tmp_path / "none")  # dev has no earlier environment


def test_a_migration_never_applies_a_preview_that_deletes_or_replaces() -> None:
    """migrate-stacks' update step: a preview with a delete or replace stops it before `up`."""
    from llmops.ci.results import RunResult
    from llmops.errors import UserError
    from llmops.migrate import Migration, _update

    class Engine:
        def __init__(self, ops: dict[str, str]) -> None:
            self.ops, self.ups = ops, 0

        def preview(self, name: str, environment: str) -> RunResult:
            result = RunResult(name, "preview", 0, "")
            result.ops = dict(self.ops)
            return result

        def up(self, name: str, environment: str) -> RunResult:
            self.ups += 1
            return RunResult(name, "up", 0, "")

    urn = "urn:pulumi:prod.m::llmops::pulumi-python:dynamic/local:Frontend::llmops-m-front"
    for op in ("delete", "replace", "create-replacement"):
        engine = Engine({urn: op})
        with pytest.raises(UserError, match=rf"prod\.m would delete or replace, so it was not updated:\n  {urn}"):
            _update(engine, "prod.m", "prod", Migration("prod"), print)
        assert engine.ups == 0
    engine = Engine({urn: "same", urn + "-2": "create"})
    migration = Migration("prod")
    _update(engine, "prod.m", "prod", migration, print)
    assert engine.ups == 1 and "prod.m" in migration.updated
