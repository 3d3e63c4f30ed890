"""The policies of the `llmops` pack, built without starting the pack.

`policies/__main__.py` hands `build_policies()` to `PolicyPack`, which then
serves them to the engine forever; tests and `policies.evaluate` call the same
objects' `validate` directly.

Enforcement: no policy fixes its own level. The pack defaults to mandatory
(a stack that passes no configuration fails closed) and each environment's
`policies/config/<environment>.json` sets the levels its stacks run with.
"""

from __future__ import annotations

from collections.abc import Callable

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationPolicy,
)
from pulumi_policy.policy import ResourceValidation

from policies import cloud, intent
from policies.facts import PlatformFacts, StackFacts

PACK_NAME = "llmops"
DEFAULT_ENFORCEMENT = EnforcementLevel.MANDATORY

StackRule = Callable[[ResourceValidationArgs, ReportViolation, PlatformFacts | None], None]
PlainRule = Callable[[ResourceValidationArgs, ReportViolation], None]


def _with_stack(rule: StackRule, facts: StackFacts) -> PlainRule:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        rule(args, report, facts.for_urn(args.urn))

    return validate


def _observing(validators: list[PlainRule], facts: StackFacts) -> list[ResourceValidation]:
    # Every resource policy records the Platform's facts, so disabling any one policy
    # never starves the others of their stack limits.
    def observe(args: ResourceValidationArgs, report: ReportViolation) -> None:
        facts.observe(args.resource_type, args.urn, args.props)

    return [observe, *validators]


def build_policies(facts: StackFacts | None = None) -> list[Policy]:
    """Every policy of the pack, sharing one memory of each stack's Platform facts."""
    facts = facts or StackFacts()

    def resource(name: str, description: str, *rules: PlainRule, stack_rules: tuple[StackRule, ...] = ()) -> Policy:
        validators = [*rules, *(_with_stack(r, facts) for r in stack_rules)]
        return ResourceValidationPolicy(name=name, description=description, validate=_observing(validators, facts))

    return [
        resource(
            "allowed-instance-types",
            "GPU instance types must be on the environment's allowlist.",
            stack_rules=(intent.allowed_instance_types, cloud.cloud_instance_types),
        ),
        resource(
            "gpus-per-endpoint",
            "An endpoint at full scale must fit the stack's GPUs-per-endpoint quota.",
            stack_rules=(intent.gpus_per_endpoint,),
        ),
        resource(
            "gpus-per-node-pool",
            "A GPU node pool at its maximum size must fit the stack's GPUs-per-pool quota.",
            stack_rules=(cloud.gpus_per_node_pool,),
        ),
        resource(
            "stack-budget",
            "The stack's monthly cost must not exceed its budget.",
            stack_rules=(intent.stack_budget,),
        ),
        resource(
            "autoscaling-bounds",
            "Autoscaling needs min <= max and max within the stack's replica quota.",
            stack_rules=(intent.autoscaling_bounds, cloud.cloud_autoscaling_bounds),
        ),
        resource(
            "training-spot-checkpoint",
            "Non-production cloud training uses spot capacity with a checkpoint location.",
            stack_rules=(intent.training_spot_checkpoint,),
        ),
        resource(
            "training-max-runtime",
            "Every training job has a maximum runtime.",
            cloud.cloud_training_max_runtime,
            stack_rules=(intent.training_max_runtime,),
        ),
        resource(
            "pinned-model-revision",
            "Production and local endpoints serve a pinned model revision (commit sha or version id, never a branch).",
            stack_rules=(intent.pinned_model_revision,),
        ),
        resource(
            "evaluation-gate",
            "Gated endpoints declare evaluation gates; production versions need a passing, traceable record.",
            stack_rules=(intent.evaluation_gate,),
        ),
        resource(
            "licence-allowlist",
            "Production and local endpoints serve models under an allowed licence.",
            stack_rules=(intent.licence_allowlist,),
        ),
        resource(
            "required-tags",
            "Taggable resources carry the team, model, environment and managed-by tags.",
            cloud.required_tags,
        ),
        resource(
            "encryption-at-rest",
            "Data at rest is encrypted: EKS secrets under KMS, SageMaker volumes, data capture and artifacts.",
            cloud.encryption_at_rest,
        ),
        resource(
            "no-public-access",
            "Nothing is public: SageMaker models in a VPC, internal load balancers, no public S3 access.",
            cloud.no_public_access,
        ),
        resource(
            "eks-endpoint-access",
            "A production EKS API endpoint is private, or public only to configured networks (not 0.0.0.0/0).",
            stack_rules=(cloud.eks_endpoint_access,),
        ),
        resource(
            "iam-no-wildcard-admin",
            "No IAM statement allows every action on every resource.",
            cloud.iam_no_wildcard_admin,
        ),
        StackValidationPolicy(
            name="s3-bucket-encryption",
            description="Every S3 bucket has a server-side encryption configuration.",
            validate=cloud.s3_bucket_encryption,
        ),
        StackValidationPolicy(
            name="s3-public-access-block",
            description="Every S3 bucket has a public access block.",
            validate=cloud.s3_public_access_block,
        ),
    ]
