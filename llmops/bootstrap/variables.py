"""The repository variables the workflows read, from the bootstrap stack's outputs.

`llmops bootstrap print-vars` prints them as `gh variable set` commands (or JSON), so
setting up a repository is copying one block: repository-wide variables, and
AWS_DEPLOY_ROLE_ARN once per GitHub environment.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass
from typing import Any

from llmops.bootstrap.jobs import BootstrapSettings, jobs


@dataclass(frozen=True)
class Variable:
    name: str
    value: str
    environment: str | None = None  # a GitHub environment's variable; None: the repository's

    def command(self, repository: str) -> str:
        scope = f" --env {shlex.quote(self.environment)}" if self.environment else ""
        return f"gh variable set {self.name} --repo {shlex.quote(repository)}{scope} --body {shlex.quote(self.value)}"


def backend_url(bucket: str, prefix: str) -> str:
    return f"s3://{bucket}/{prefix}"


def repository_variables(settings: BootstrapSettings, role_arns: dict[str, str]) -> list[Variable]:
    """Every variable the workflows read; `role_arns` maps each job's role name to its ARN."""
    out = [
        Variable("PULUMI_BACKEND_URL", backend_url(settings.state_bucket, settings.state_prefix)),
        Variable("AWS_REGION", settings.region),
    ]
    for job in jobs(settings):
        out.append(Variable(job.variable, role_arns[job.role_name], job.environment))
    return out


def from_outputs(outputs: dict[str, Any]) -> tuple[str, list[Variable]]:
    """The repository and its variables, from `pulumi stack output --json` of the bootstrap stack."""
    try:
        repository = str(outputs["repository"])
        variables = [Variable(**v) for v in outputs["variables"]]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not the bootstrap stack's outputs (no valid {exc} in them)") from None
    return repository, variables


def to_outputs(variables: list[Variable]) -> list[dict[str, Any]]:
    return [asdict(v) for v in variables]
