"""An approved SageMaker training package becomes a registry version by commit (llmops.training_adopt).

Proves, with SageMaker and S3 under botocore's Stubber (exact parameters): the newest approved
package of the pipeline's group is found, its `model.tar.gz` is pinned by its S3 object
version and declared as a new version under `versions:` with the file's comments and layout
kept, the result validates, serves nothing yet, and the commit message carries the lineage
(dataset@version → execution → package → object) and says whether the run used the
registry's current spec; a package that is not approved, an unversioned object or a version
name already declared writes nothing; `--write --commit` commits the file alone in a real git
repository; `--pending` (the scheduled adopt.yml) proposes each newly approved package once, as
the model's next `v<N>`, and the installed CLI refuses an unclear request in one line.
Cannot prove: that the package's weights are good (the pipeline's evaluation gate judged them).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from llmops.registry import load_registry
from llmops.settings import load_all_stacks
from llmops.training_adopt import AdoptError, adopt, next_version, pending, write
from llmops.training_runs import OUTPUT, display_name, spec_digest
from tests.unit.conftest import REPO

pytestmark = pytest.mark.unit

MODEL = "mistral-7b-instruct"
GROUP = "llmops-dev-mistral-7b-instruct"
PACKAGE = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{GROUP}/3"
EXECUTION = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/llmops-dev-mistral-7b-instruct-finetune/execution/x1"
URL = "s3://llmops-artifacts-a1b2/mistral-7b-instruct/output/pipelines-x1-FineTune/output/model.tar.gz"
REPORT = "s3://llmops-artifacts-a1b2/mistral-7b-instruct/evaluation/x1/report.json"
OUTPUTS = {OUTPUT: {MODEL: {"pipelineArn": EXECUTION.split("/execution")[0], "packageGroup": GROUP, "spec": "0"}}}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "models", tmp_path / "models", ignore=shutil.ignore_patterns("data"))
    shutil.copytree(REPO / "stacks", tmp_path / "stacks")
    return tmp_path


def clients() -> tuple[Any, Any]:
    keys = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "y"}
    return boto3.client("sagemaker", **keys), boto3.client("s3", **keys)


def entry(root: Path) -> Any:
    return load_registry(root / "models", load_all_stacks(root / "stacks")).models[MODEL]


def stub_package(
    sm: Stubber, s3: Stubber, status: str = "Approved", version_id: str | None = "3HL4kqtJ", spec: str = ""
) -> None:
    sm.add_response(
        "list_model_packages",
        {
            "ModelPackageSummaryList": [
                {"ModelPackageArn": PACKAGE, "ModelPackageStatus": "Completed", "CreationTime": 0}
            ]
        },
        {
            "ModelPackageGroupName": GROUP,
            "ModelApprovalStatus": "Approved",
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 1,
        },
    )
    sm.add_response(
        "describe_model_package",
        {
            "ModelPackageName": GROUP,
            "ModelPackageArn": PACKAGE,
            "CreationTime": 0,
            "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": []},
            "ModelApprovalStatus": status,
            "InferenceSpecification": {
                "Containers": [{"Image": "img", "ModelDataUrl": URL}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            "MetadataProperties": {"GeneratedBy": EXECUTION},
            "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": REPORT}}},
        },
        {"ModelPackageName": PACKAGE},
    )
    if status != "Approved":
        return
    bucket, key = URL.removeprefix("s3://").split("/", 1)
    s3.add_response("head_object", {"VersionId": version_id} if version_id else {}, {"Bucket": bucket, "Key": key})
    if version_id:
        sm.add_response(
            "describe_pipeline_execution",
            {"PipelineExecutionArn": EXECUTION, "PipelineExecutionDisplayName": spec},
            {"PipelineExecutionArn": EXECUTION},
        )


def test_an_approved_package_becomes_a_declared_version(root: Path) -> None:
    model = entry(root)
    sm, s3 = clients()
    with Stubber(sm) as sm_stub, Stubber(s3) as s3_stub:
        stub_package(sm_stub, s3_stub, spec=display_name(spec_digest(model)))
        adoption = adopt(root, model, "v2", OUTPUTS, sm, s3)
        sm_stub.assert_no_pending_responses()
        s3_stub.assert_no_pending_responses()
    assert adoption.before == (root / "models" / f"{MODEL}.yaml").read_text()  # nothing written yet
    added = [line for line in adoption.after.splitlines() if line not in adoption.before.splitlines()]
    assert added == ["  v2:", "    s3:", f"      uri: {URL}", "      version_id: 3HL4kqtJ"], added
    assert [line for line in adoption.before.splitlines() if line.lstrip().startswith("#")] == [
        line for line in adoption.after.splitlines() if line.lstrip().startswith("#")
    ]
    lineage = "Lineage: support-tickets@1 (base mistralai/Mistral-7B-Instruct-v0.3)"
    for part in (lineage, EXECUTION, PACKAGE, "3HL4kqtJ", REPORT):
        assert part in adoption.message, part
    assert "the registry's current training spec" in adoption.message

    write(root, adoption, commit=False)
    declared = entry(root)
    assert declared.versions["v2"].s3 is not None and declared.versions["v2"].s3.archive
    assert all(v.version == "v1" for env in ("dev", "staging") for v in declared.deployment(env).variants)


@pytest.mark.parametrize(
    ("status", "version_id", "version", "expected"),
    [
        ("PendingManualApproval", "v", "v2", "not Approved"),
        ("Approved", None, "v2", "its bucket must be versioned"),
        ("Approved", "v", "v1", "declared already"),
    ],
    ids=["not-approved", "unversioned", "taken"],
)
def test_what_cannot_become_a_version_writes_nothing(
    root: Path, status: str, version_id: str | None, version: str, expected: str
) -> None:
    before = (root / "models" / f"{MODEL}.yaml").read_text()
    sm, s3 = clients()
    with Stubber(sm) as sm_stub, Stubber(s3) as s3_stub:
        stub_package(sm_stub, s3_stub, status=status, version_id=version_id, spec="spec-old")
        with pytest.raises(AdoptError, match=expected):
            adopt(root, entry(root), version, OUTPUTS, sm, s3)
    assert (root / "models" / f"{MODEL}.yaml").read_text() == before


def test_write_and_commit_the_file_alone(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "t")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "t@example.com")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "base"], cwd=root, check=True)
    (root / "stacks" / "Pulumi.dev.yaml").write_text((root / "stacks" / "Pulumi.dev.yaml").read_text() + "# edit\n")
    sm, s3 = clients()
    with Stubber(sm) as sm_stub, Stubber(s3) as s3_stub:
        stub_package(sm_stub, s3_stub, spec="spec-0123")
        adoption = adopt(root, entry(root), "v2", OUTPUTS, sm, s3)
    assert "an earlier training spec (run spec-0123" in adoption.message
    sha = write(root, adoption, commit=True)
    show = ["git", "show", "--name-only", "--format=%s", str(sha)]
    subject, _, *files = subprocess.run(show, cwd=root, capture_output=True, text=True, check=True).stdout.splitlines()
    assert subject == f"feat(models): {MODEL} v2 from training package 3"
    assert files == [f"models/{MODEL}.yaml"]  # the stack file's edit stays uncommitted


def test_pending_adopts_a_new_approved_package_as_the_next_version_once(root: Path) -> None:
    """What the scheduled adopt.yml runs: a package no version declares becomes v2; once declared,
    the next run passes it over (one approval, one proposal)."""
    sm, s3 = clients()
    models = load_registry(root / "models", load_all_stacks(root / "stacks")).models
    with Stubber(sm) as sm_stub, Stubber(s3) as s3_stub:
        stub_package(sm_stub, s3_stub, spec=display_name(spec_digest(models[MODEL])))
        found = pending(root, models, OUTPUTS, sm, s3)
        sm_stub.assert_no_pending_responses()  # one description per package, not two
        s3_stub.assert_no_pending_responses()
    [adoption] = found.adoptions
    assert (adoption.model, adoption.version, found.passed_over, found.refused) == (MODEL, "v2", [], [])
    write(root, adoption, commit=False)

    models = load_registry(root / "models", load_all_stacks(root / "stacks")).models
    with Stubber(sm) as sm_stub, Stubber(s3) as s3_stub:
        stub_package(sm_stub, s3_stub, spec="spec-0")
        found = pending(root, models, OUTPUTS, sm, s3)
    assert found.adoptions == [] and found.refused == []
    assert found.passed_over == [f"{MODEL}: the newest approved package is declared already, as v2"]


def test_pending_passes_over_a_group_with_no_approved_package(root: Path) -> None:
    sm, s3 = clients()
    models = load_registry(root / "models", load_all_stacks(root / "stacks")).models
    with Stubber(sm) as sm_stub:
        sm_stub.add_response("list_model_packages", {"ModelPackageSummaryList": []})
        found = pending(root, models, OUTPUTS, sm, s3)
    assert (
        found.adoptions == []
        and found.refused == []
        and found.passed_over
        == [f"{MODEL}: no approved package in {GROUP}: approve one (SageMaker Model Registry) first"]
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "adopt", "--stack", "dev"], "name one MODEL, or give --pending"),
        (["train", "adopt", MODEL, "--stack", "dev", "--pending"], "name one MODEL, or give --pending"),
        (["train", "adopt", "--stack", "dev", "--pending", "--version", "v9"], "--pending names each version itself"),
        (["train", "adopt", MODEL, "--stack", "dev"], "give the new version's name: --version V"),
        (["train", "adopt", "--stack", "local", "--pending"], "--pending reads SageMaker packages"),
    ],
)
def test_the_installed_cli_refuses_an_unclear_adoption_in_one_line(argv: list[str], message: str) -> None:
    env = {"HOME": str(Path.home()), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "llmops"), *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert message in done.stderr, done.stderr


def test_the_next_version_follows_the_highest_v_number(root: Path) -> None:
    model = entry(root)
    assert next_version(model) == "v2"
    other = model.model_copy(
        update={"versions": {**model.versions, "v10": model.versions["v1"], "canary": model.versions["v1"]}}
    )
    assert next_version(other) == "v11"
    assert next_version(model.model_copy(update={"versions": {"base": model.versions["v1"]}})) == "v1"
