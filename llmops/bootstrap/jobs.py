"""The bootstrap's settings and the workflow job kinds that get an AWS role.

One role per kind of job in `.github/workflows/`, each trusted for exactly the GitHub
OIDC subject that job's token carries:
- deploy-<env>: deploy.yml's `<env>` job and review.yml's AWS jobs, which run in the GitHub
  environment `<env>` (subject `repo:<owner>/<repo>:environment:<env>`);
- preview: pr.yml's `preview` job (subject `repo:<owner>/<repo>:pull_request`);
- drift: drift.yml, scheduled on the default branch (`repo:<owner>/<repo>:ref:refs/heads/<branch>`);
- experiment: experiment.yml, scheduled on the default branch (same subject, its own role).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

CONFIG_NAMESPACE = "llmops-bootstrap"
GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
GITHUB_OIDC_HOST = GITHUB_OIDC_URL.removeprefix("https://")
# The CI roles live under their own IAM path, which the deploy roles may not touch.
ROLE_PATH = "/llmops-ci/"
STATE_KEY_ALIAS = "alias/llmops-state"

Kind = Literal["deploy", "preview", "drift", "experiment"]


class BootstrapSettings(BaseModel):
    """The bootstrap stack's config (`llmops-bootstrap:<key>` in bootstrap/Pulumi.<stack>.yaml)."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    repository: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$",
        description="owner/name of the GitHub repository whose workflows may assume the roles.",
    )
    state_bucket: str = Field(
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="The S3 bucket the stacks' state lives in."
    )
    state_prefix: str = Field(default="llmops", pattern=r"^[A-Za-z0-9._-]+$", description="Folder in the bucket.")
    environments: list[str] = Field(
        default_factory=lambda: ["dev", "staging", "prod"],
        min_length=1,
        description="One KMS key and deploy role each.",
    )
    default_branch: str = Field(default="main", description="The branch scheduled workflows run from.")
    region: str = "us-east-1"
    existing_oidc_provider_arn: str | None = Field(
        default=None, description="An account has one GitHub OIDC provider: reuse it when one exists."
    )
    hf_token_secret: str = Field(
        default="llmops/hf-token",
        pattern=r"^[A-Za-z0-9/_+=.@-]{1,512}$",
        description="The Secrets Manager secret created (empty) for the Hugging Face token gated models need; "
        "the stacks name it in llmops:hfTokenSecret.",
    )


@dataclass(frozen=True)
class Job:
    """One kind of workflow job: its role's name, the token subject it trusts, the variable naming it."""

    kind: Kind
    environment: str | None  # deploy roles: the environment they deploy
    subject: str
    variable: str  # the repository (or environment) variable the workflow reads the ARN from

    @property
    def role_name(self) -> str:
        return f"llmops-ci-{self.kind}" + (f"-{self.environment}" if self.environment else "")


def jobs(settings: BootstrapSettings) -> list[Job]:
    """Every job kind that assumes a role, with the one subject its role trusts."""
    repo = f"repo:{settings.repository}"
    branch = f"{repo}:ref:refs/heads/{settings.default_branch}"
    out = [Job("deploy", env, f"{repo}:environment:{env}", "AWS_DEPLOY_ROLE_ARN") for env in settings.environments]
    out.append(Job("preview", None, f"{repo}:pull_request", "AWS_PREVIEW_ROLE_ARN"))
    out.append(Job("drift", None, branch, "AWS_DRIFT_ROLE_ARN"))
    out.append(Job("experiment", None, branch, "AWS_EXPERIMENT_ROLE_ARN"))
    return out


def key_alias(environment: str) -> str:
    """The KMS key of an environment's secrets (the stacks' `secretsprovider: awskms://<alias>`)."""
    return f"alias/llmops-{environment}"


def ci_role_arn(partition: str, account_id: str, kind: Kind, environment: str | None = None) -> str:
    """The ARN the bootstrap gives a job kind's role (the stacks grant these cluster access)."""
    job = Job(kind, environment if kind == "deploy" else None, "", "")
    return f"arn:{partition}:iam::{account_id}:role{ROLE_PATH}{job.role_name}"
