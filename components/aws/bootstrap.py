"""The once-per-account bootstrap: state bucket, secrets keys, GitHub OIDC provider, CI roles.

Everything the stacks and the workflows assume exists before the first `pulumi up`
(README "First AWS deploy"). Its program is `bootstrap/__main__.py`, a Pulumi project
of its own; what each role may do and whom it trusts is `llmops.bootstrap.iam`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws.account import partition
from components.aws.storage import encrypted_bucket, kms_key
from llmops.bootstrap.iam import Account, permissions, trust_policy
from llmops.bootstrap.jobs import (
    GITHUB_OIDC_URL,
    ROLE_PATH,
    STATE_KEY_ALIAS,
    BootstrapSettings,
    Job,
    jobs,
    key_alias,
)
from llmops.bootstrap.variables import backend_url, repository_variables, to_outputs

TAGS = {"managed-by": "llmops", "component": "bootstrap"}


@dataclass
class BootstrapArgs:
    settings: BootstrapSettings


class Bootstrap(pulumi.ComponentResource):
    """What one AWS account needs before its stacks: created once, changed rarely, by an administrator."""

    def __init__(self, name: str, args: BootstrapArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmops:bootstrap:Bootstrap", name, None, opts)
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)
        state_key = self._key(f"{name}-state-key", STATE_KEY_ALIAS, "Pulumi state of the llmops stacks")
        self.state_bucket = encrypted_bucket(
            f"{name}-state",
            kms_key_arn=state_key.arn,
            tags=TAGS,
            opts=pulumi.ResourceOptions(parent=self, protect=True),
            region=settings.region,
            bucket_name=settings.state_bucket,
        )
        keys = {
            env: self._key(f"{name}-{env}-key", key_alias(env), f"secrets of the llmops {env} stacks")
            for env in settings.environments
        }
        provider_arn = self._oidc_provider(name, settings, child)
        # Created empty: the token is put in by hand (README), never through Pulumi's config or state.
        hub_token = aws.secretsmanager.Secret(
            f"{name}-hf-token",
            name=settings.hf_token_secret,
            description="Hugging Face token for gated models (llmops:hfTokenSecret)",
            tags=TAGS,
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        account = pulumi.Output.all(account_id, state_key.arn, hub_token.arn, *[k.arn for k in keys.values()]).apply(
            lambda a: Account(
                partition(settings.region),
                a[0],
                settings.state_bucket,
                settings.state_prefix,
                a[1],
                dict(zip(keys, a[3:], strict=True)),
                hub_token_arn=a[2],
            )
        )
        self.roles = {job.role_name: self._role(job, provider_arn, account) for job in jobs(settings)}
        role_arns = pulumi.Output.all(**{n: r.arn for n, r in self.roles.items()})
        self.outputs = {
            "repository": settings.repository,
            "backendUrl": backend_url(settings.state_bucket, settings.state_prefix),
            "stateBucket": self.state_bucket.bucket,
            "secretsProviders": {
                env: f"awskms://{key_alias(env)}?region={settings.region}" for env in settings.environments
            },
            "oidcProviderArn": provider_arn,
            "hfTokenSecret": hub_token.name,
            "roleArns": role_arns,
            "variables": role_arns.apply(lambda arns: to_outputs(repository_variables(settings, arns))),
        }
        self.register_outputs(self.outputs)

    def _key(self, logical: str, alias: str, description: str) -> aws.kms.Key:
        key = kms_key(logical, description, TAGS, pulumi.ResourceOptions(parent=self, protect=True))
        aws.kms.Alias(f"{logical}-alias", name=alias, target_key_id=key.key_id, opts=pulumi.ResourceOptions(parent=key))
        return key

    def _oidc_provider(
        self, name: str, settings: BootstrapSettings, child: pulumi.ResourceOptions
    ) -> pulumi.Output[str]:
        """GitHub's OIDC provider: an account holds one per URL, so an existing one is reused."""
        if settings.existing_oidc_provider_arn is not None:
            return pulumi.Output.from_input(settings.existing_oidc_provider_arn)
        provider = aws.iam.OpenIdConnectProvider(
            f"{name}-github-oidc", url=GITHUB_OIDC_URL, client_id_lists=["sts.amazonaws.com"], tags=TAGS, opts=child
        )
        return provider.arn

    def _role(self, job: Job, provider_arn: pulumi.Output[str], account: pulumi.Output[Account]) -> aws.iam.Role:
        role = aws.iam.Role(
            job.role_name,
            name=job.role_name,
            path=ROLE_PATH,
            description=f"llmops CI: {job.kind} jobs ({job.subject})",
            assume_role_policy=provider_arn.apply(lambda arn: json.dumps(trust_policy(arn, job))),
            max_session_duration=3600,
            tags={**TAGS, "job": job.kind, **({"environment": job.environment} if job.environment else {})},
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.iam.RolePolicy(
            f"{job.role_name}-permissions",
            role=role.id,
            policy=account.apply(lambda a: json.dumps(permissions(job, a))),
            opts=pulumi.ResourceOptions(parent=role),
        )
        return role
