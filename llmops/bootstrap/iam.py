"""The CI roles' IAM documents, as plain data: trust policies and least-privilege permissions.

Every role trusts the GitHub OIDC provider alone, for one repository and one subject
(`jobs.Job.subject`); no role trusts another principal, and no permission grants
`sts:AssumeRole`, so no role can become another. The deploy roles may create and change
the stacks' own IAM roles but nothing under the CI roles' path, so a deploy cannot widen
its own trust or another job's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmops.bootstrap.jobs import GITHUB_OIDC_HOST, ROLE_PATH, Job

# Read-only actions previews and drift checks need to refresh what the stacks create. Object
# reads are not among them: those are granted on the state prefix only.
READ_ONLY_ACTIONS = [
    "application-autoscaling:Describe*",
    "cloudwatch:Describe*",
    "cloudwatch:Get*",
    "cloudwatch:List*",
    "ec2:Describe*",
    "ecr:DescribeRepositories",
    "eks:Describe*",
    "eks:List*",
    "events:Describe*",
    "events:List*",
    "iam:Get*",
    "iam:List*",
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListResourceTags",
    "logs:Describe*",
    "logs:ListTagsForResource",
    "s3:GetBucket*",
    "s3:GetEncryptionConfiguration",
    "s3:GetLifecycleConfiguration",
    "s3:ListAllMyBuckets",
    "sagemaker:Describe*",
    "sagemaker:List*",
    "secretsmanager:DescribeSecret",
    "sns:Get*",
    "sns:List*",
]
# What `pulumi up` creates: the services of components/aws. IAM is narrowed separately below.
DEPLOY_SERVICES = [
    "application-autoscaling:*",
    "cloudwatch:*",
    "ec2:*",
    "eks:*",
    "events:*",
    "kms:*",
    "logs:*",
    "s3:*",
    "sagemaker:*",
    "sns:*",
]
STATE_BUCKET_ADMIN = [
    "s3:DeleteBucket*",
    "s3:PutBucket*",
    "s3:PutEncryptionConfiguration",
    "s3:PutLifecycleConfiguration",
]
KEY_ADMIN = [
    "kms:PutKeyPolicy",
    "kms:ScheduleKeyDeletion",
    "kms:DisableKey",
    "kms:CreateGrant",
    "kms:DeleteAlias",
    "kms:UpdateAlias",
]
IAM_WRITE_ACTIONS = ["iam:*Role*", "iam:*Policy*", "iam:*OpenIDConnectProvider*", "iam:TagRole", "iam:UntagRole"]


@dataclass(frozen=True)
class Account:
    """The facts every document names: partition, account, the state bucket and keys."""

    partition: str
    account_id: str
    state_bucket: str
    state_prefix: str
    state_key_arn: str
    key_arns: dict[str, str]  # environment -> its secrets key's ARN
    hub_token_arn: str | None = None  # the Secrets Manager secret holding the Hugging Face token

    def arn(self, service: str, resource: str, region: str = "") -> str:
        return f"arn:{self.partition}:{service}:{region}:{self.account_id}:{resource}"


def trust_policy(provider_arn: str, job: Job) -> dict[str, Any]:
    """Only GitHub's OIDC tokens for this repository and this job's subject may assume the role."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com",
                        f"{GITHUB_OIDC_HOST}:sub": job.subject,
                    }
                },
            }
        ],
    }


def permissions(job: Job, account: Account) -> dict[str, Any]:
    """The role's whole permission policy, by job kind."""
    if job.kind == "deploy":
        assert job.environment is not None
        statements = [*_deploy(job.environment, account), *_hub_token(account)]
    elif job.kind == "experiment":
        # GetMetricData and ListMetrics have no resource scope. The state, read only: `cost --measured`
        # and `rightsize` read an EKS stack's `cluster` output to reach its Prometheus.
        # The scheduled adopt.yml proposes newly approved training packages: it reads the package
        # groups, the run that made each package and its archive's object version (a HEAD: no
        # decryption). ListModelPackages has no resource scope.
        statements = [
            _allow("Metrics", ["cloudwatch:GetMetricData", "cloudwatch:ListMetrics"], ["*"]),
            *_state(account, write=None),
            _allow("ListPackages", ["sagemaker:ListModelPackages"], ["*"]),
            _allow(
                "DescribePackages",
                ["sagemaker:DescribeModelPackage", "sagemaker:DescribePipelineExecution"],
                [
                    account.arn("sagemaker", "model-package/llmops-*", "*"),
                    account.arn("sagemaker", "pipeline/llmops-*", "*"),
                ],
            ),
            _allow("PackageObjects", ["s3:GetObject"], [f"arn:{account.partition}:s3:::llmops-*/*/output/*"]),
        ]
    else:  # preview, drift: read the cloud, read the state, take the stack lock, decrypt secrets
        statements = [
            _allow("ReadOnly", READ_ONLY_ACTIONS, ["*"]),
            *_state(account, write="locks"),
            _allow("Decrypt", ["kms:Decrypt", "kms:DescribeKey"], sorted(account.key_arns.values())),
            *_hub_token(account),
        ]
    return {"Version": "2012-10-17", "Statement": statements}


def _deploy(environment: str, account: Account) -> list[dict[str, Any]]:
    ci_roles = account.arn("iam", f"role{ROLE_PATH}*")
    return [
        _allow("Services", DEPLOY_SERVICES, ["*"]),
        _allow("StackRoles", [*IAM_WRITE_ACTIONS, "iam:Get*", "iam:List*"], [account.arn("iam", "*")]),
        _allow(
            "PassStackRoles",
            ["iam:PassRole"],
            [account.arn("iam", "role/llmops*")],
            {
                "StringLike": {
                    "iam:PassedToService": ["eks.amazonaws.com", "ec2.amazonaws.com", "sagemaker.amazonaws.com"]
                }
            },
        ),
        _allow("ServiceLinkedRoles", ["iam:CreateServiceLinkedRole"], [account.arn("iam", "role/aws-service-role/*")]),
        *_state(account, write=environment),
        # What the bootstrap made stays as it made it: the CI roles and their OIDC provider, the
        # state bucket's settings, the keys' policies; other environments' keys are out of reach.
        _deny("CiRoles", ["iam:*"], [ci_roles, account.arn("iam", f"oidc-provider/{GITHUB_OIDC_HOST}")]),
        _deny("StateBucketSettings", STATE_BUCKET_ADMIN, [f"arn:{account.partition}:s3:::{account.state_bucket}"]),
        _deny("BootstrapKeyAdmin", KEY_ADMIN, sorted([account.state_key_arn, *account.key_arns.values()])),
        *[_deny("OtherEnvironmentKeys", ["kms:*"], other) for other in [_others(environment, account)] if other],
        _deny("NoRoleChaining", ["sts:AssumeRole", "sts:AssumeRoleWithWebIdentity"], ["*"]),
    ]


def _hub_token(account: Account) -> list[dict[str, Any]]:
    """The program reads the hub token when it runs (preview, drift and up alike) to hand it to gated
    SageMaker and EKS containers; that one secret only. Preview and drift gain nothing they could not
    already decrypt: the token is a secret in the state they read."""
    if account.hub_token_arn is None:
        return []
    return [_allow("HubToken", ["secretsmanager:GetSecretValue"], [account.hub_token_arn])]


def _others(environment: str, account: Account) -> list[str]:
    return sorted(arn for env, arn in account.key_arns.items() if env != environment)


def _state(account: Account, *, write: str | None) -> list[dict[str, Any]]:
    """Read the state; write a stack's files (`write`: an environment), only take locks (`locks`), or
    nothing (None)."""
    bucket = f"arn:{account.partition}:s3:::{account.state_bucket}"
    root = f"{bucket}/{account.state_prefix}/.pulumi"
    if write is None:
        return [
            _allow("StateList", ["s3:ListBucket", "s3:GetBucketLocation"], [bucket]),
            _allow("StateRead", ["s3:GetObject"], [f"{root}/*"]),
            _allow("StateKey", ["kms:Decrypt"], [account.state_key_arn]),
        ]
    if write == "locks":
        writable = [f"{root}/locks/*"]
    else:  # stacks/, history/, backups/, locks/ of <env> and of its review stacks pr-<N>-<env>
        writable = [f"{root}/*/llmops/{write}*", f"{root}/*/llmops/pr-*-{write}*"]
    return [
        _allow("StateList", ["s3:ListBucket", "s3:GetBucketLocation", "s3:GetBucketVersioning"], [bucket]),
        _allow("StateRead", ["s3:GetObject"], [f"{root}/*"]),
        _allow("StateWrite", ["s3:PutObject", "s3:DeleteObject"], writable),
        _allow("StateKey", ["kms:Decrypt", "kms:GenerateDataKey"], [account.state_key_arn]),
    ]


def _allow(
    sid: str, actions: list[str], resources: list[str], condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        out["Condition"] = condition
    return out


def _deny(sid: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Deny", "Action": actions, "Resource": resources}
