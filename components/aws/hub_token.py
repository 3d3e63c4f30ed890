"""The Hugging Face token gated models load with, from the Secrets Manager secret the stack names.

The registry marks a gated repository (`versions.<v>.huggingface.gated`); the stack names the
secret (`llmops:hfTokenSecret`); `llmops registry validate` refuses a gated model on a stack
that names none. Each runtime gets the token the way it supports:

- SageMaker serving containers take plain environment variables only (a Model's container
  environment cannot reference Secrets Manager), so the value is read at deploy time into
  `HF_TOKEN` as a Pulumi secret: encrypted in the state by the stack's KMS key, never in git
  or the stack's config; AWS shows it to whoever may `sagemaker:DescribeModel`.
- EKS serving pods read a Kubernetes Secret of their model's by `secretKeyRef` (the cluster
  encrypts Secrets with its KMS key).
- Training runs our own script, so it reads the secret itself at start with its role, which
  may `secretsmanager:GetSecretValue` on that secret alone (`token_statement`).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws.account import account_id, partition
from components.aws.iam import statement
from components.context import StackContext

TOKEN_ENV = "HF_TOKEN"  # what huggingface_hub, TGI and vLLM read
SECRET_ENV = "HF_TOKEN_SECRET"  # the training script's: the secret to read the token from
K8S_KEY = "token"


def token_secret(ctx: StackContext) -> str:
    """The secret's name or ARN; the registry check has refused a gated model without one."""
    ref = ctx.settings.hf_token_secret
    if ref is None:
        raise ValueError(f"stacks/Pulumi.{ctx.stack}.yaml: a gated model needs `llmops:hfTokenSecret`")
    return ref


def token_value(ctx: StackContext, parent: pulumi.Resource) -> pulumi.Output[str]:
    """The token, read from Secrets Manager when the program runs (preview and up alike), kept secret."""
    version = aws.secretsmanager.get_secret_version_output(
        secret_id=token_secret(ctx), opts=pulumi.InvokeOutputOptions(parent=parent)
    )
    return pulumi.Output.secret(version.secret_string)


def token_statement(
    ctx: StackContext, parent: pulumi.Resource, known_arn: pulumi.Output[str] | None = None
) -> dict[str, Any]:
    """Least privilege for a role that reads the token itself: GetSecretValue on that secret only."""
    region = ctx.settings.region
    arn = account_id(parent, known_arn).apply(
        lambda account: ctx.settings.hf_token_secret_arn(partition(region), account)
    )
    return statement("HubToken", ["secretsmanager:GetSecretValue"], [arn])
