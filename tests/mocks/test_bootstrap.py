"""The bootstrap stack (bootstrap/__main__.py) under mocks, and `llmops bootstrap print-vars` on its outputs.

Proves: every CI role trusts GitHub's OIDC provider alone, for this repository and the one
subject its job runs under; no role may assume another (no trust in an AWS principal, no
sts:AssumeRole granted, deploy roles denied the CI roles' IAM path); the state bucket is
versioned, KMS-encrypted, public-access-blocked and denies insecure transport; each
environment gets its key alias; the printed variables name every role the workflows read.
Cannot prove: how IAM evaluates the documents (no AWS account); `pulumi up` of the bootstrap
is not run here.
"""

from __future__ import annotations

import fnmatch
import json
import os
import runpy
import subprocess
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.aws.bootstrap import Bootstrap, BootstrapArgs
from llmops.bootstrap.jobs import BootstrapSettings, jobs

from .harness import REPO, Graph, mocked

pytestmark = pytest.mark.mocks

REPOSITORY = "acme/llm-platform"
CONFIG = {
    "llmops-bootstrap:repository": REPOSITORY,
    "llmops-bootstrap:stateBucket": "acme-pulumi-state",
    "aws:region": "us-east-1",
}
SETTINGS = BootstrapSettings(repository=REPOSITORY, state_bucket="acme-pulumi-state")


def run_bootstrap() -> Graph:
    with mocked("account", CONFIG, project="llmops-bootstrap") as monitor:

        @pulumi.runtime.test
        def program() -> None:
            runpy.run_path(str(REPO / "bootstrap" / "__main__.py"), run_name="__pulumi_program__")

        program()
    return monitor.graph


@pytest.fixture(scope="module")
def graph() -> Graph:
    import asyncio

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return run_bootstrap()
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def _roles(graph: Graph) -> dict[str, dict[str, Any]]:
    return {r.inputs["name"]: r.inputs for r in graph.of_type("aws:iam/role:Role")}


def _allowed_actions(document: dict[str, Any]) -> list[str]:
    return [
        a
        for s in document["Statement"]
        if s["Effect"] == "Allow"
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]


def test_one_role_per_workflow_job_kind(graph: Graph) -> None:
    deploy = [f"llmops-ci-deploy-{env}" for env in ("dev", "staging", "prod")]
    assert sorted(_roles(graph)) == sorted([*deploy, "llmops-ci-preview", "llmops-ci-drift", "llmops-ci-experiment"])
    # Every role the workflows assume has its variable in .github/workflows.
    workflows = "".join(p.read_text() for p in (REPO / ".github" / "workflows").glob("*.yml"))
    for job in jobs(SETTINGS):
        assert f"vars.{job.variable}" in workflows, job.variable


def test_every_trust_policy_names_the_repository_and_only_the_github_provider(graph: Graph) -> None:
    (provider,) = graph.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert provider.inputs["url"] == "https://token.actions.githubusercontent.com"
    expected = {j.role_name: j.subject for j in jobs(SETTINGS)}
    for name, role in _roles(graph).items():
        (statement,) = json.loads(role["assumeRolePolicy"])["Statement"]
        assert statement["Principal"] == {
            "Federated": f"arn:aws:iam::123456789012:oidc-provider/{provider.inputs['url'][8:]}"
        }
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        equals = statement["Condition"]["StringEquals"]
        assert equals["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
        assert equals["token.actions.githubusercontent.com:sub"] == expected[name]
        assert expected[name].startswith(f"repo:{REPOSITORY}:"), name
        assert "StringLike" not in statement["Condition"], "a wildcard subject would trust other repositories"
    subjects = {n: s for n, s in expected.items()}
    assert subjects["llmops-ci-deploy-prod"] == f"repo:{REPOSITORY}:environment:prod"
    assert subjects["llmops-ci-preview"] == f"repo:{REPOSITORY}:pull_request"
    assert subjects["llmops-ci-drift"] == f"repo:{REPOSITORY}:ref:refs/heads/main"


def test_no_role_can_assume_another(graph: Graph) -> None:
    policies = {
        r.name.removesuffix("-permissions"): json.loads(r.inputs["policy"])
        for r in graph.of_type("aws:iam/rolePolicy:RolePolicy")
    }
    assert sorted(policies) == sorted(_roles(graph))
    for name, document in policies.items():
        for action in _allowed_actions(document):
            for assume in ("sts:AssumeRole", "sts:AssumeRoleWithWebIdentity", "sts:AssumeRoleWithSAML"):
                assert not fnmatch.fnmatch(assume.lower(), action.lower()), f"{name} allows {action}"
    for name, role in _roles(graph).items():  # nor does any role trust an AWS principal
        for statement in json.loads(role["assumeRolePolicy"])["Statement"]:
            assert set(statement["Principal"]) == {"Federated"}, name
    # A deploy role may manage the stacks' roles but never the CI roles (that would widen a trust).
    deploy = policies["llmops-ci-deploy-dev"]
    denied = [s for s in deploy["Statement"] if s["Effect"] == "Deny" and s["Sid"] == "CiRoles"]
    assert denied and "arn:aws:iam::123456789012:role/llmops-ci/*" in denied[0]["Resource"]
    assert all(r.inputs["path"] == "/llmops-ci/" for r in graph.of_type("aws:iam/role:Role"))


def test_deploy_roles_reach_their_own_environment_only(graph: Graph) -> None:
    policies = {r.name: json.loads(r.inputs["policy"]) for r in graph.of_type("aws:iam/rolePolicy:RolePolicy")}
    dev = {s["Sid"]: s for s in policies["llmops-ci-deploy-dev-permissions"]["Statement"]}
    assert dev["StateWrite"]["Resource"] == [
        "arn:aws:s3:::acme-pulumi-state/llmops/.pulumi/*/llmops/dev*",
        "arn:aws:s3:::acme-pulumi-state/llmops/.pulumi/*/llmops/pr-*-dev*",
    ]
    other_keys = dev["OtherEnvironmentKeys"]["Resource"]
    assert len(other_keys) == 2 and dev["OtherEnvironmentKeys"]["Effect"] == "Deny"
    preview = {s["Sid"]: s for s in policies["llmops-ci-preview-permissions"]["Statement"]}
    assert preview["StateWrite"]["Resource"] == ["arn:aws:s3:::acme-pulumi-state/llmops/.pulumi/locks/*"]
    assert not any(
        a.endswith(":*") and not a.startswith(("s3:", "kms:"))
        for a in _allowed_actions(policies["llmops-ci-preview-permissions"])
        if "Describe" not in a
    )


def test_state_bucket_is_versioned_encrypted_private_and_denies_insecure_transport(graph: Graph) -> None:
    bucket = graph.one("aws:s3/bucket:Bucket", "llmops-state")
    assert bucket.inputs["bucket"] == "acme-pulumi-state"
    children = {r.type: r for r in graph.children_of(bucket.urn)}
    assert children["aws:s3/bucketVersioning:BucketVersioning"].inputs["versioningConfiguration"]["status"] == "Enabled"
    block = children["aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"].inputs
    assert all(block[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    rule = children["aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"].inputs[
        "rules"
    ][0]
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    (deny,) = json.loads(children["aws:s3/bucketPolicy:BucketPolicy"].inputs["policy"])["Statement"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == ["arn:aws:s3:::acme-pulumi-state", "arn:aws:s3:::acme-pulumi-state/*"]


def test_one_key_per_environment_under_its_alias(graph: Graph) -> None:
    aliases = sorted(r.inputs["name"] for r in graph.of_type("aws:kms/alias:Alias"))
    assert aliases == ["alias/llmops-dev", "alias/llmops-prod", "alias/llmops-staging", "alias/llmops-state"]
    assert all(k.inputs["enableKeyRotation"] for k in graph.of_type("aws:kms/key:Key"))
    # The stacks' secrets providers are these aliases.
    for env in ("dev", "staging", "prod"):
        assert f"awskms://alias/llmops-{env}?" in (REPO / "stacks" / f"Pulumi.{env}.yaml").read_text()


def test_the_hub_token_secret_is_readable_by_the_roles_whose_program_reads_it_only(graph: Graph) -> None:
    (secret,) = graph.of_type("aws:secretsmanager/secret:Secret")
    assert secret.inputs["name"] == "llmops/hf-token"  # what the shipped stacks name in llmops:hfTokenSecret
    for env in ("dev", "staging", "prod"):
        assert "llmops:hfTokenSecret: llmops/hf-token" in (REPO / "stacks" / f"Pulumi.{env}.yaml").read_text()
    assert not graph.of_type("aws:secretsmanager/secretVersion:SecretVersion")  # the value is put in by hand
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:llmops/hf-token-AbCdEf"
    readers = {}
    for policy in graph.of_type("aws:iam/rolePolicy:RolePolicy"):
        for s in json.loads(policy.inputs["policy"])["Statement"]:
            if s["Effect"] == "Allow" and any(fnmatch.fnmatch("secretsmanager:GetSecretValue", a) for a in s["Action"]):
                readers[policy.name.removesuffix("-permissions")] = s
    # Deploy, preview and drift run the program, which reads the token; the experiment role does not.
    assert sorted(readers) == [
        *(f"llmops-ci-deploy-{e}" for e in ("dev", "prod", "staging")),
        "llmops-ci-drift",
        "llmops-ci-preview",
    ]
    for statement in readers.values():
        assert statement["Action"] == ["secretsmanager:GetSecretValue"] and statement["Resource"] == [arn]


def test_the_experiment_role_reads_training_packages_and_writes_nothing(graph: Graph) -> None:
    """The scheduled adopt.yml proposes approved packages with it: reads only (a pull request is the write)."""
    [policy] = [p for p in graph.of_type("aws:iam/rolePolicy:RolePolicy") if p.name.startswith("llmops-ci-experiment")]
    statements = json.loads(policy.inputs["policy"])["Statement"]
    actions = [a for s in statements for a in s["Action"]]
    for needed in (
        "sagemaker:ListModelPackages",
        "sagemaker:DescribeModelPackage",
        "sagemaker:DescribePipelineExecution",
    ):
        assert needed in actions
    verbs = ("Get", "List", "Describe")
    assert all(a.split(":")[1].startswith(verbs) for a in actions if not a.startswith("kms:")), actions
    [objects] = [s for s in statements if s["Sid"] == "PackageObjects"]
    assert objects["Action"] == ["s3:GetObject"] and objects["Resource"] == ["arn:aws:s3:::llmops-*/*/output/*"]


def test_print_vars_prints_every_variable_from_the_stack_outputs(tmp_path: Path) -> None:
    import asyncio

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    captured: dict[str, Any] = {}
    try:
        with mocked("account", CONFIG, project="llmops-bootstrap"):

            @pulumi.runtime.test
            def program() -> pulumi.Output[Any]:
                outputs = Bootstrap("llmops", BootstrapArgs(SETTINGS)).outputs
                return pulumi.Output.all(**outputs).apply(captured.update)

            program()
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(captured))
    env = {"HOME": os.environ.get("HOME", "/tmp"), "PATH": "/usr/bin:/bin"}
    llmops = str(REPO / ".venv" / "bin" / "llmops")
    done = subprocess.run(
        [llmops, "bootstrap", "print-vars", "--outputs", str(path)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"gh variable set PULUMI_BACKEND_URL --repo {REPOSITORY} --body s3://acme-pulumi-state/llmops" in lines
    assert f"gh variable set AWS_REGION --repo {REPOSITORY} --body us-east-1" in lines
    for env_name in ("dev", "staging", "prod"):
        assert (
            f"gh variable set AWS_DEPLOY_ROLE_ARN --repo {REPOSITORY} --env {env_name} "
            f"--body arn:aws:iam::123456789012:role/llmops-ci-deploy-{env_name}"
        ) in lines
    for variable in ("AWS_PREVIEW_ROLE_ARN", "AWS_DRIFT_ROLE_ARN", "AWS_EXPERIMENT_ROLE_ARN"):
        assert any(
            line.startswith(f"gh variable set {variable} --repo {REPOSITORY} --body arn:aws:iam::") for line in lines
        )
    # Not the bootstrap's outputs: a located error, nothing printed.
    path.write_text(json.dumps({"endpoints": {}}))
    bad = subprocess.run(
        [llmops, "bootstrap", "print-vars", "--outputs", str(path)], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 1 and str(path) in bad.stderr and not bad.stdout
