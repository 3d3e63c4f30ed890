"""Rules on the cloud resources themselves (AWS and Kubernetes inputs, camelCase).

They catch what the registry cannot express: a component that forgets a tag,
a key, a VPC or an internal annotation. Values that depend on resources not yet
created are unknown in a preview; a rule that only needs to know a value is
*set* treats them as set, a rule that must read one lets the engine report that
it cannot decide until `up`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from pulumi_policy import PolicyResource, ReportViolation, ResourceValidationArgs, StackValidationArgs
from pulumi_policy.proxy import UnknownValueError

from components.context import REQUIRED_TAGS
from llmops.catalog import has_instance_storage
from policies.facts import TRAINING, PlatformFacts, catalog_gpus, needs_allowlist
from policies.props import as_list, get, is_set, json_document, plain, tag_keys, type_chain

BUCKET_TYPES = {"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"}
SSE_TYPES = {
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
}
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_ACL_TYPES = {"aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2"}
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
SM_MODEL = "aws:sagemaker/model:Model"
SM_ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
SM_PIPELINE = "aws:sagemaker/pipeline:Pipeline"
SCALING_TARGET = "aws:appautoscaling/target:Target"
K8S_SERVICE = "kubernetes:core/v1:Service"
K8S_HPA_TYPES = {
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
    "kubernetes:autoscaling/v1:HorizontalPodAutoscaler",
}
K8S_JOB = "kubernetes:batch/v1:Job"
IAM_DOCUMENT_TYPES = {
    "aws:iam/policy:Policy",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
}
IAM_ATTACHMENT_TYPES = {
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:iam/userPolicyAttachment:UserPolicyAttachment",
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
    "aws:iam/policyAttachment:PolicyAttachment",
}
ADMIN_POLICY_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"

INTERNAL_LB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-internal": {"true", "0.0.0.0/0"},
    "service.beta.kubernetes.io/aws-load-balancer-scheme": {"internal"},
}
PUBLIC_ACLS = {"public-read", "public-read-write", "authenticated-read"}
PUBLIC_GRANTEES = (
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
)
HUB_MODEL_ENV = "HF_MODEL_ID"


# --------------------------------------------------------------------------- tags


@cache
def aws_taggable(resource_type: str) -> bool:
    """Whether a pulumi-aws resource type takes `tags`, read from the installed SDK's signature."""
    try:
        package, module_path, class_name = resource_type.split(":")
    except ValueError:
        return False
    if package != "aws":
        return False
    try:
        module = importlib.import_module(f"pulumi_aws.{module_path.split('/')[0]}")
        init = getattr(module, class_name)._internal_init
    except (ImportError, AttributeError):
        return False
    return "tags" in inspect.signature(init).parameters


def required_tags(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Every taggable AWS resource carries the cost and ownership tags."""
    if not args.resource_type.startswith("aws:"):
        return
    present = set(args.props)
    if "tags" not in present and not aws_taggable(args.resource_type):
        return
    keys = tag_keys(get(args.props, "tags")) | tag_keys(get(args.props, "tagsAll"))
    if args.provider is not None:
        keys |= tag_keys(get(_decoded(get(args.provider.props, "defaultTags")), "tags"))
    missing = [t for t in REQUIRED_TAGS if t not in keys]
    if missing:
        report(
            f"missing tags: {', '.join(missing)} (required: {', '.join(REQUIRED_TAGS)}). Pass "
            "`tags=StackContext.tags(model=..., team=...)` to the resource.",
            None,
        )


def _decoded(value: Any) -> Any:
    # Provider configuration objects reach the analyzer JSON-encoded.
    return json_document(value) if isinstance(value, str) and value else value


# --------------------------------------------------------------------------- encryption at rest


def encryption_at_rest(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """EKS secrets under a KMS key; SageMaker endpoint, data-capture and training volumes encrypted."""
    props, kind = args.props, args.resource_type
    if kind == EKS_CLUSTER:
        resources = [str(r) for r in as_list(get(props, "encryptionConfig", "resources"))]
        if "secrets" not in resources or not is_set(props, "encryptionConfig", "provider", "keyArn"):
            report(
                "EKS cluster secrets are not encrypted with a KMS key: set encryptionConfig "
                "{provider: {keyArn: <kms key arn>}, resources: ['secrets']}.",
                None,
            )
    elif kind == SM_ENDPOINT_CONFIG:
        variants = list(get(props, "productionVariants", default=[])) + list(
            get(props, "shadowProductionVariants", default=[])
        )
        needs_key = [
            str(get(v, "instanceType"))
            for v in variants
            if not is_set(v, "serverlessConfig") and not has_instance_storage(str(get(v, "instanceType", default="")))
        ]
        if needs_key and not is_set(props, "kmsKeyArn"):
            report(
                f"endpoint volumes on {', '.join(sorted(set(needs_key)))} are not encrypted: set kmsKeyArn "
                "(instance types with NVMe instance storage are hardware-encrypted and exempt).",
                None,
            )
        if is_set(props, "dataCaptureConfig") and not is_set(props, "dataCaptureConfig", "kmsKeyId"):
            report("captured requests and responses are not encrypted: set dataCaptureConfig.kmsKeyId.", None)
    elif kind == SM_PIPELINE and is_set(props, "pipelineDefinition"):
        for step in _training_steps(get(props, "pipelineDefinition")):
            name, arguments = step.get("Name", "?"), step.get("Arguments") or {}
            instance = str(get(arguments, "ResourceConfig", "InstanceType", default=""))
            if not has_instance_storage(instance) and not get(arguments, "ResourceConfig", "VolumeKmsKeyId"):
                report(f"training step {name}: ResourceConfig.VolumeKmsKeyId is not set ({instance}).", None)
            if not get(arguments, "OutputDataConfig", "KmsKeyId"):
                report(f"training step {name}: OutputDataConfig.KmsKeyId is not set; artifacts are unencrypted.", None)
    elif kind in SSE_TYPES:
        rules = list(get(props, "rules", default=[]))
        if not any(is_set(r, "applyServerSideEncryptionByDefault", "sseAlgorithm") for r in rules):
            report("the bucket encryption configuration has no default encryption rule (sseAlgorithm).", None)


def _training_steps(definition: Any) -> list[Mapping[str, Any]]:
    document = plain(json_document(definition))
    return [s for s in document.get("Steps", []) if s.get("Type") == "Training"]


def _buckets_without(args: StackValidationArgs, companion_types: set[str]) -> list[PolicyResource]:
    """Buckets that no resource of `companion_types` refers to (by dependency or by bucket name)."""
    companions = [r for r in args.resources if r.resource_type in companion_types]
    covered: set[str] = set()
    named: set[str] = set()
    for companion in companions:
        covered.update(d.urn for d in companion.property_dependencies.get("bucket", []))
        covered.update(d.urn for d in companion.dependencies)
        value = _known(companion.props, "bucket")
        if value:
            named.add(str(value))
    return [
        r
        for r in args.resources
        if r.resource_type in BUCKET_TYPES
        and r.urn not in covered
        and not named.intersection(str(v) for v in (_known(r.props, "bucket"), _known(r.props, "id")) if v)
    ]


def _known(props: Any, key: str) -> Any:
    try:
        return get(props, key)
    except UnknownValueError:  # a value not known yet cannot name anything
        return None


def s3_bucket_encryption(args: StackValidationArgs, report: ReportViolation) -> None:
    """Every S3 bucket has a server-side encryption configuration."""
    for bucket in _buckets_without(args, SSE_TYPES):
        report(
            f"bucket {bucket.name} has no BucketServerSideEncryptionConfiguration: add one "
            "(aws:kms with the environment's key for model artifacts and captured data).",
            bucket.urn,
        )


# --------------------------------------------------------------------------- nothing public


def no_public_access(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """SageMaker models in a VPC (isolated where the container allows), internal load
    balancers only, no public S3 access."""
    props, kind = args.props, args.resource_type
    if kind == SM_MODEL:
        if not (is_set(props, "vpcConfig", "subnets") and is_set(props, "vpcConfig", "securityGroupIds")):
            report("the SageMaker model runs outside a VPC: set vpcConfig {subnets, securityGroupIds}.", None)
        if not get(props, "enableNetworkIsolation", default=False) and not _downloads_from_hub(props):
            report(
                "the container loads its weights from S3 and needs no network: set enableNetworkIsolation: true.",
                None,
            )
    elif kind == K8S_SERVICE and get(props, "spec", "type") == "LoadBalancer":
        annotations = get(props, "metadata", "annotations", default={})
        internal = any(
            str(get(annotations, key, default="")).lower() in values for key, values in INTERNAL_LB_ANNOTATIONS.items()
        )
        if not internal:
            report(
                "a LoadBalancer Service is internet-facing: annotate it "
                "service.beta.kubernetes.io/aws-load-balancer-scheme: internal, or use ClusterIP.",
                None,
            )
    elif kind == PUBLIC_ACCESS_BLOCK:
        flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        off = [f for f in flags if get(props, f) is not True]
        if off:
            report(f"public access block leaves {', '.join(off)} unset or false; set all four to true.", None)
    elif kind in BUCKET_ACL_TYPES:
        acl = get(props, "acl")
        grantees = [
            str(get(g, "grantee", "uri", default="")) for g in get(props, "accessControlPolicy", "grants", default=[])
        ]
        if acl in PUBLIC_ACLS or any(g in PUBLIC_GRANTEES for g in grantees):
            report(f"the bucket ACL grants public access ({acl or 'grant to all users'}); use a private ACL.", None)
    elif kind == BUCKET_POLICY and is_set(props, "policy"):
        for statement in _statements(get(props, "policy")):
            principal = statement.get("Principal")
            anyone = principal == "*" or (isinstance(principal, Mapping) and "*" in as_list(principal.get("AWS")))
            if statement.get("Effect") == "Allow" and anyone and not statement.get("Condition"):
                report("the bucket policy allows any principal ('*') without a condition.", None)


def _downloads_from_hub(props: Any) -> bool:
    """Containers that fetch weights from the Hugging Face Hub at start need the network."""
    containers = [get(props, "primaryContainer"), *get(props, "containers", default=[])]
    for container in containers:
        model_id = get(container, "environment", HUB_MODEL_ENV)
        if model_id and not str(model_id).startswith("/"):
            return True
    return False


def s3_public_access_block(args: StackValidationArgs, report: ReportViolation) -> None:
    """Every S3 bucket has a public access block."""
    for bucket in _buckets_without(args, {PUBLIC_ACCESS_BLOCK}):
        report(f"bucket {bucket.name} has no BucketPublicAccessBlock: add one with all four flags true.", bucket.urn)


# --------------------------------------------------------------------------- IAM


def _statements(document: Any) -> list[Mapping[str, Any]]:
    doc = plain(json_document(document))
    return [s for s in as_list(doc.get("Statement")) if isinstance(s, Mapping)]


def _admin_statements(documents: Iterable[Any]) -> list[str]:
    found = []
    for document in documents:
        for statement in _statements(document):
            actions = [str(a) for a in as_list(statement.get("Action"))]
            resources = [str(r) for r in as_list(statement.get("Resource"))]
            if statement.get("Effect") == "Allow" and "*" in actions and "*" in resources:
                found.append(str(statement.get("Sid") or "(no Sid)"))
    return found


def iam_no_wildcard_admin(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """No IAM statement allows action '*' on resource '*' (nor attaches AdministratorAccess)."""
    props, kind = args.props, args.resource_type
    documents: list[Any] = []
    if kind in IAM_DOCUMENT_TYPES:
        documents = [get(props, "policy")]
    elif kind == "aws:iam/role:Role":
        documents = [get(p, "policy") for p in get(props, "inlinePolicies", default=[])]
        if ADMIN_POLICY_ARN in [str(a) for a in get(props, "managedPolicyArns", default=[])]:
            report("the role has AdministratorAccess attached; grant the actions and resources it uses.", None)
    elif kind in IAM_ATTACHMENT_TYPES and get(props, "policyArn") == ADMIN_POLICY_ARN:
        report("AdministratorAccess is attached; grant the actions and resources it uses.", None)
    for sid in _admin_statements(d for d in documents if d):
        report(f"statement {sid} allows Action '*' on Resource '*'; name the actions and resources it needs.", None)


# --------------------------------------------------------------------------- stack limits on cloud resources


def cloud_instance_types(args: ResourceValidationArgs, report: ReportViolation, stack: PlatformFacts | None) -> None:
    """GPU node pools and SageMaker variants use the stack's allowed instance types."""
    if stack is None or not stack.allowed_instance_types:
        return
    allowed = stack.allowed_instance_types
    if args.resource_type == NODE_GROUP:
        types = [str(t) for t in get(args.props, "instanceTypes", default=[])]
        where = "llmops:cluster.gpuPools[].instanceTypes"
    elif args.resource_type == SM_ENDPOINT_CONFIG:
        types = [str(get(v, "instanceType", default="")) for v in get(args.props, "productionVariants", default=[])]
        where = "the model's serving.instance"
    else:
        return
    for instance in types:
        if instance and instance not in allowed and needs_allowlist(instance):
            report(
                f"{instance} is not allowed in environment {stack.environment!r} ({stack.stack_file}: "
                f"llmops:policy.allowedInstanceTypes: {', '.join(allowed)}); change {where}.",
                None,
            )


def gpus_per_node_pool(args: ResourceValidationArgs, report: ReportViolation, stack: PlatformFacts | None) -> None:
    """A GPU node pool at its maximum size holds at most the stack's GPUs-per-pool quota."""
    if args.resource_type != NODE_GROUP or stack is None:
        return
    types = [str(t) for t in get(args.props, "instanceTypes", default=[])]
    gpus = max((catalog_gpus(t) or 0 for t in types), default=0)
    max_size = int(get(args.props, "scalingConfig", "maxSize", default=0))
    quota = stack.quotas.max_gpus_per_pool
    if gpus and max_size * gpus > quota:
        report(
            f"node pool can grow to {max_size * gpus} GPUs (maxSize {max_size} x {gpus} GPUs), over the quota of "
            f"{quota} ({stack.stack_file}: llmops:quotas.maxGpusPerPool). Lower the pool's maxSize in "
            "llmops:cluster.gpuPools.",
            None,
        )


def eks_endpoint_access(args: ResourceValidationArgs, report: ReportViolation, stack: PlatformFacts | None) -> None:
    """In production the EKS API endpoint is private, or public only to named networks."""
    if args.resource_type != EKS_CLUSTER or stack is None or not stack.production:
        return
    if get(args.props, "vpcConfig", "endpointPublicAccess", default=True) is False:
        return
    # AWS opens an endpoint whose publicAccessCidrs are unset to every address.
    cidrs = [str(c) for c in as_list(get(args.props, "vpcConfig", "publicAccessCidrs", default=None) or ["0.0.0.0/0"])]
    open_to = [c for c in cidrs if c in ("0.0.0.0/0", "::/0")]
    if open_to:
        report(
            f"the EKS API endpoint is public to {', '.join(open_to)} in production: set "
            f"llmops:cluster.endpointAccess.publicCidrs to your runners' and operators' networks, or mode: private "
            f"with self-hosted runners in the VPC ({stack.stack_file}).",
            None,
        )


def cloud_autoscaling_bounds(
    args: ResourceValidationArgs, report: ReportViolation, stack: PlatformFacts | None
) -> None:
    """Scaling targets and HPAs: min <= max, max within the stack's replica quota."""
    if args.resource_type == SCALING_TARGET and get(args.props, "serviceNamespace") == "sagemaker":
        low, high = get(args.props, "minCapacity", default=1), get(args.props, "maxCapacity", default=1)
        what = "scalable target minCapacity/maxCapacity"
    elif args.resource_type in K8S_HPA_TYPES:
        low, high = get(args.props, "spec", "minReplicas", default=1), get(args.props, "spec", "maxReplicas", default=1)
        what = "HorizontalPodAutoscaler spec.minReplicas/maxReplicas"
    else:
        return
    low, high = int(low), int(high)
    if low > high:
        report(f"{what} is {low}/{high}: the minimum exceeds the maximum.", None)
    if stack is not None and high > stack.quotas.max_replicas_per_endpoint:
        report(
            f"{what} allows {high} replicas, over the quota of {stack.quotas.max_replicas_per_endpoint} "
            f"({stack.stack_file}: llmops:quotas.maxReplicasPerEndpoint).",
            None,
        )


def cloud_training_max_runtime(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """SageMaker training steps and Kubernetes training Jobs stop at a maximum runtime."""
    if args.resource_type == SM_PIPELINE and is_set(args.props, "pipelineDefinition"):
        for step in _training_steps(get(args.props, "pipelineDefinition")):
            if not get(step, "Arguments", "StoppingCondition", "MaxRuntimeInSeconds"):
                name = step.get("Name", "?")
                report(f"training step {name}: StoppingCondition.MaxRuntimeInSeconds is not set.", None)
    elif (
        args.resource_type == K8S_JOB
        and TRAINING in type_chain(args.urn)
        and not get(args.props, "spec", "activeDeadlineSeconds")
    ):
        report("the training Job has no spec.activeDeadlineSeconds; set it from training.max_runtime.", None)
