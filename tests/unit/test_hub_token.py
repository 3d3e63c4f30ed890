"""Gated hub models: declared in the registry, their token named by the stack, refused without one.

Proves: a gated version that serves (or is the training base) on an AWS stack whose file names
no `llmops:hfTokenSecret` is a problem located at its `gated:` line, naming the stack file and
the setting, once per stack; a gated version that does not serve there, a local stack, or a stack
naming the secret raise none; the setting takes a secret's name or ARN, refuses a token typed in
its place without echoing it, and gives IAM the secret's ARN (a name: with Secrets Manager's
six-character suffix); the training script reads the token from the named secret with its own
role (boto3 under botocore's Stubber) and leaves a token already set alone.
Cannot prove: that the hub gates the repositories the shipped registry marks (the hub is not
reachable here), or that AWS accepts the secret's ARN.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from llmops.registry import validate
from llmops.settings import StackSettings, StackSettingsError, load_stack_settings
from tests.unit.conftest import REPO, entry

pytestmark = pytest.mark.unit

Write = Callable[[str, Any], Path]


def without_secret(stacks: dict[str, StackSettings], *names: str) -> dict[str, StackSettings]:
    return {k: v.model_copy(update={"hf_token_secret": None}) if k in names else v for k, v in stacks.items()}


def gated(version: str = "v1") -> dict[str, Any]:
    return entry(**{f"versions.{version}.huggingface.gated": True})


def test_a_gated_model_on_a_stack_without_the_secret_is_located_at_its_gated_line(
    write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    path = write("demo", gated())
    problems = validate(models_dir, without_secret(stacks, "prod"))[1]
    (problem,) = problems
    gated_line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "gated: true" in t)
    assert (problem.file, problem.line, problem.path) == (
        "models/demo.yaml",
        gated_line,
        "versions.v1.huggingface.gated",
    )
    assert "stack 'prod'" in problem.message
    assert "set `llmops:hfTokenSecret` in stacks/Pulumi.prod.yaml" in problem.message
    # Every stack of the shipped files names the secret: the same entry is valid there.
    assert validate(models_dir, stacks)[1] == []


def test_only_what_loads_the_repository_needs_the_token(
    write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    bare = without_secret(stacks, "dev", "staging", "prod")
    write("demo", gated("v2"))  # declared gated, serves nowhere
    assert validate(models_dir, bare)[1] == []
    local = gated() | {"deployments": {"local": {}}}  # the local target uses the machine's own token
    write("demo", local)
    assert validate(models_dir, bare)[1] == []


def test_a_gated_training_base_needs_the_token(
    write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    training = {"base_model": "org/demo", "dataset": {"uri": "s3://b/d/", "version": "1"}, "max_runtime": 600}
    write("demo", gated("v2") | {"training": training, "deployments": {"dev": {}}})
    (problem,) = validate(models_dir, without_secret(stacks, "dev"))[1]
    assert problem.path == "versions.v2.huggingface.gated"
    assert "v2 (org/demo) is gated on the Hugging Face hub and is the training base in stack 'dev'" in problem.message


def test_the_setting_names_a_secret_never_the_token(tmp_path: Path) -> None:
    settings = StackSettings(target="aws", environment="dev", hfTokenSecret="llmops/hf-token")
    assert settings.hf_token_secret_arn("aws", "123456789012") == (
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:llmops/hf-token-??????"
    )
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:llmops/hf-token-AbC123"
    assert StackSettings(target="aws", environment="dev", hfTokenSecret=arn).hf_token_secret_arn("aws", "1") == arn
    token = "hf_" + "Ab1" * 12
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text(f"config:\n  llmops:target: aws\n  llmops:environment: dev\n  llmops:hfTokenSecret: {token}\n")
    with pytest.raises(StackSettingsError) as caught:
        load_stack_settings(stack)
    assert str(caught.value).startswith("stacks/Pulumi.dev.yaml: llmops:hfTokenSecret: name a Secrets Manager secret")
    assert token not in str(caught.value)


def _finetune() -> ModuleType:
    path = REPO / "components" / "aws" / "train" / "finetune.py"
    spec = importlib.util.spec_from_file_location("finetune_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_training_script_reads_the_token_with_its_role(monkeypatch: pytest.MonkeyPatch) -> None:
    finetune = _finetune()
    client = boto3.client("secretsmanager", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    monkeypatch.setenv("HF_TOKEN_SECRET", "llmops/hf-token")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with Stubber(client) as stub:
        stub.add_response(
            "get_secret_value",
            {"Name": "llmops/hf-token", "SecretString": "hf_from_the_secret"},
            {"SecretId": "llmops/hf-token"},
        )
        finetune.hub_token(client)
        stub.assert_no_pending_responses()
    assert os.environ["HF_TOKEN"] == "hf_from_the_secret"
    with Stubber(client):  # a token already set: no call (the Stubber would refuse one)
        monkeypatch.setenv("HF_TOKEN", "hf_given")
        finetune.hub_token(client)
    assert os.environ["HF_TOKEN"] == "hf_given"
