"""Policies on AWS and Kubernetes resources, each shown passing and failing.

Proves: tags, encryption at rest, nothing public, IAM wildcards, node-pool GPU
caps, instance allowlists, scaling bounds and training runtimes are judged from
the camelCase inputs pulumi-aws 7 and pulumi-kubernetes 4 send, in the engine's
shape, including preview's unknown values. Cannot prove: that the aws
components create these resources this way (their mocks tests run the same
policies through `policies.evaluate`), nor anything AWS itself would reject.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError

from policies.cloud import aws_taggable
from policies.facts import TRAINING
from tests.policy.conftest import Pack, platform_args, resource_args, stack_args, stack_settings

pytestmark = pytest.mark.policy

TAGS = {"team": "platform-ml", "model": "platform", "environment": "prod", "managed-by": "llmops"}
BUCKET = "aws:s3/bucket:Bucket"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"


# --------------------------------------------------------------------------- tags


def test_all_required_tags_pass(pack: Pack) -> None:
    assert pack.messages("required-tags", resource_args(BUCKET, {"bucket": "b", "tags": TAGS})) == []


def test_missing_tags_are_listed(pack: Pack) -> None:
    tags = {"team": "platform-ml", "environment": "prod"}
    [message] = pack.messages("required-tags", resource_args(BUCKET, {"bucket": "b", "tags": tags}))
    assert message.startswith("missing tags: model, managed-by")


def test_taggable_type_without_any_tags_fails(pack: Pack) -> None:
    props = {"clusterName": "c", "instanceTypes": ["g5.2xlarge"], "scalingConfig": {"maxSize": 1}}
    assert len(pack.messages("required-tags", resource_args("aws:eks/nodeGroup:NodeGroup", props))) == 1


def test_tags_given_as_a_list_of_key_value_objects(pack: Pack) -> None:
    tags = [{"key": k, "value": v, "propagateAtLaunch": True} for k, v in TAGS.items() if k != "team"]
    props = {"maxSize": 1, "minSize": 0, "tags": tags}
    [message] = pack.messages("required-tags", resource_args("aws:autoscaling/group:Group", props))
    assert message.startswith("missing tags: team ")


def test_provider_default_tags_count(pack: Pack) -> None:
    provider = {"region": "us-east-1", "defaultTags": json.dumps({"tags": TAGS})}
    assert pack.messages("required-tags", resource_args(BUCKET, {"bucket": "b"}, provider_props=provider)) == []


def test_unknown_tag_values_still_count_as_present(pack: Pack) -> None:
    tags = {**TAGS, "model": UNKNOWN_STRING_VALUE}
    assert pack.messages("required-tags", resource_args(BUCKET, {"bucket": "b", "tags": tags})) == []


@pytest.mark.parametrize(
    ("resource_type", "props"),
    [
        ("aws:iam/rolePolicy:RolePolicy", {"role": "r", "policy": "{}"}),
        ("kubernetes:core/v1:Service", {"metadata": {"name": "s"}}),
    ],
)
def test_untaggable_resources_are_not_checked(pack: Pack, resource_type: str, props: dict[str, Any]) -> None:
    assert pack.messages("required-tags", resource_args(resource_type, props)) == []


def test_taggability_is_read_from_the_installed_sdk() -> None:
    assert aws_taggable("aws:sagemaker/endpointConfiguration:EndpointConfiguration")
    assert not aws_taggable("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert not aws_taggable("aws:nosuchmodule/thing:Thing")


# --------------------------------------------------------------------------- encryption at rest


def test_eks_secrets_need_a_kms_key(pack: Pack) -> None:
    kind = "aws:eks/cluster:Cluster"
    [message] = pack.messages("encryption-at-rest", resource_args(kind, {"name": "c"}))
    assert "EKS cluster secrets are not encrypted" in message
    # In a preview the key's ARN is unknown (created in the same update): set is enough.
    encrypted = {"encryptionConfig": {"provider": {"keyArn": UNKNOWN_STRING_VALUE}, "resources": ["secrets"]}}
    assert pack.messages("encryption-at-rest", resource_args(kind, encrypted)) == []


ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"


def _variants(instance: str) -> dict[str, Any]:
    return {"productionVariants": [{"variantName": "v1", "modelName": "m", "instanceType": instance}]}


def test_endpoint_volume_key_required_without_instance_storage(pack: Pack) -> None:
    [message] = pack.messages("encryption-at-rest", resource_args(ENDPOINT_CONFIG, _variants("ml.inf2.xlarge")))
    assert "endpoint volumes on ml.inf2.xlarge are not encrypted: set kmsKeyArn" in message
    keyed = {**_variants("ml.inf2.xlarge"), "kmsKeyArn": "arn:aws:kms:us-east-1:1:key/k"}
    assert pack.messages("encryption-at-rest", resource_args(ENDPOINT_CONFIG, keyed)) == []


def test_nvme_instances_are_hardware_encrypted(pack: Pack) -> None:
    # SageMaker rejects a KMS key for ml.g5 (NVMe instance storage); the policy must not demand one.
    assert pack.messages("encryption-at-rest", resource_args(ENDPOINT_CONFIG, _variants("ml.g5.2xlarge"))) == []


def test_data_capture_needs_a_key(pack: Pack) -> None:
    capture = {"enableCapture": True, "destinationS3Uri": "s3://b/capture", "initialSamplingPercentage": 10}
    props = {**_variants("ml.g5.2xlarge"), "dataCaptureConfig": capture}
    [message] = pack.messages("encryption-at-rest", resource_args(ENDPOINT_CONFIG, props))
    assert "set dataCaptureConfig.kmsKeyId" in message
    props["dataCaptureConfig"] = {**capture, "kmsKeyId": "arn:aws:kms:us-east-1:1:key/k"}
    assert pack.messages("encryption-at-rest", resource_args(ENDPOINT_CONFIG, props)) == []


def _pipeline(**arguments: Any) -> dict[str, Any]:
    step = {"Name": "Train", "Type": "Training", "Arguments": {"ResourceConfig": {"InstanceType": "ml.m5.xlarge"}}}
    step["Arguments"].update(arguments)
    return {
        "pipelineName": "p",
        "roleArn": "arn:r",
        "pipelineDefinition": json.dumps({"Version": "2020-12-01", "Steps": [step]}),
    }


def test_training_volumes_and_artifacts_encrypted(pack: Pack) -> None:
    kind = "aws:sagemaker/pipeline:Pipeline"
    messages = pack.messages("encryption-at-rest", resource_args(kind, _pipeline()))
    assert [m.split(":")[1].strip() for m in messages] == [
        "ResourceConfig.VolumeKmsKeyId is not set (ml.m5.xlarge).",
        "OutputDataConfig.KmsKeyId is not set; artifacts are unencrypted.",
    ]
    encrypted = _pipeline(
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "VolumeKmsKeyId": "k"},
        OutputDataConfig={"S3OutputPath": "s3://b/out", "KmsKeyId": "k"},
    )
    assert pack.messages("encryption-at-rest", resource_args(kind, encrypted)) == []


def test_bucket_encryption_rule_needs_an_algorithm(pack: Pack) -> None:
    empty = {"bucket": "b", "rules": [{"bucketKeyEnabled": True}]}
    assert len(pack.messages("encryption-at-rest", resource_args(SSE, empty))) == 1
    kms = {"bucket": "b", "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]}
    assert pack.messages("encryption-at-rest", resource_args(SSE, kms)) == []


def test_every_bucket_has_an_encryption_configuration(pack: Pack) -> None:
    rules = [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]
    # In a preview the configuration's `bucket` is the unknown id; the dependency links them.
    covered = stack_args(
        (BUCKET, "artifacts", {"bucket": "artifacts"}),
        (SSE, "artifacts-sse", {"bucket": UNKNOWN_STRING_VALUE, "rules": rules}),
        deps={"artifacts-sse": ["artifacts"]},
    )
    assert pack.messages("s3-bucket-encryption", covered) == []
    # Mocks and `up` know the name: matching by it also counts.
    by_name = stack_args(
        (BUCKET, "artifacts", {"bucket": "artifacts"}), (SSE, "sse", {"bucket": "artifacts", "rules": rules})
    )
    assert pack.messages("s3-bucket-encryption", by_name) == []
    bare = stack_args(
        (BUCKET, "artifacts", {"bucket": "artifacts"}),
        (BUCKET, "capture", {"bucket": "capture"}),
        (SSE, "sse", {"bucket": "artifacts", "rules": rules}),
    )
    [message] = pack.messages("s3-bucket-encryption", bare)
    assert message.startswith("bucket capture has no BucketServerSideEncryptionConfiguration")


# --------------------------------------------------------------------------- nothing public

SM_MODEL = "aws:sagemaker/model:Model"
VPC = {"subnets": ["subnet-1"], "securityGroupIds": ["sg-1"]}


def test_sagemaker_model_in_vpc_and_isolated(pack: Pack) -> None:
    s3_weights = {"image": "img", "modelDataUrl": "s3://b/model.tar.gz"}
    ok = {"executionRoleArn": "arn:r", "primaryContainer": s3_weights, "vpcConfig": VPC, "enableNetworkIsolation": True}
    assert pack.messages("no-public-access", resource_args(SM_MODEL, ok)) == []
    messages = pack.messages("no-public-access", resource_args(SM_MODEL, {"primaryContainer": s3_weights}))
    assert len(messages) == 2
    assert "outside a VPC" in messages[0]
    assert "set enableNetworkIsolation: true" in messages[1]


def test_hub_downloading_container_may_use_the_network(pack: Pack) -> None:
    hub = {"image": "tgi", "environment": {"HF_MODEL_ID": "org/model", "HF_MODEL_REVISION": "abc"}}
    assert pack.messages("no-public-access", resource_args(SM_MODEL, {"primaryContainer": hub, "vpcConfig": VPC})) == []
    local_path = {"image": "tgi", "environment": {"HF_MODEL_ID": "/opt/ml/model"}, "modelDataUrl": "s3://b/m"}
    props = {"primaryContainer": local_path, "vpcConfig": VPC}
    assert len(pack.messages("no-public-access", resource_args(SM_MODEL, props))) == 1


SERVICE = "kubernetes:core/v1:Service"


@pytest.mark.parametrize(
    ("spec_type", "annotations", "violations"),
    [
        ("LoadBalancer", {}, 1),
        ("LoadBalancer", {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"}, 0),
        ("LoadBalancer", {"service.beta.kubernetes.io/aws-load-balancer-internal": "true"}, 0),
        ("LoadBalancer", {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"}, 1),
        ("ClusterIP", {}, 0),
    ],
)
def test_services_are_not_public_load_balancers(
    pack: Pack, spec_type: str, annotations: dict[str, str], violations: int
) -> None:
    props = {
        "metadata": {"name": "llm", "annotations": annotations},
        "spec": {"type": spec_type, "ports": [{"port": 80}]},
    }
    assert len(pack.messages("no-public-access", resource_args(SERVICE, props))) == violations


def test_public_access_block_needs_all_four_flags(pack: Pack) -> None:
    flags = {
        "blockPublicAcls": True,
        "blockPublicPolicy": True,
        "ignorePublicAcls": True,
        "restrictPublicBuckets": True,
    }
    assert pack.messages("no-public-access", resource_args(PAB, {"bucket": "b", **flags})) == []
    [message] = pack.messages(
        "no-public-access", resource_args(PAB, {"bucket": "b", **flags, "blockPublicPolicy": False})
    )
    assert "leaves blockPublicPolicy unset or false" in message


def test_public_bucket_acl_and_policy(pack: Pack) -> None:
    acl = "aws:s3/bucketAcl:BucketAcl"
    assert len(pack.messages("no-public-access", resource_args(acl, {"bucket": "b", "acl": "public-read"}))) == 1
    assert pack.messages("no-public-access", resource_args(acl, {"bucket": "b", "acl": "private"})) == []
    policy = "aws:s3/bucketPolicy:BucketPolicy"
    anyone = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
    document = {"Version": "2012-10-17", "Statement": [anyone]}
    assert (
        len(pack.messages("no-public-access", resource_args(policy, {"bucket": "b", "policy": json.dumps(document)})))
        == 1
    )
    anyone["Condition"] = {"StringEquals": {"aws:SourceVpce": "vpce-1"}}
    assert (
        pack.messages("no-public-access", resource_args(policy, {"bucket": "b", "policy": json.dumps(document)})) == []
    )


def test_every_bucket_has_a_public_access_block(pack: Pack) -> None:
    blocked = stack_args((BUCKET, "b", {"bucket": "b"}), (PAB, "b-pab", {"bucket": "b"}))
    assert pack.messages("s3-public-access-block", blocked) == []
    [message] = pack.messages("s3-public-access-block", stack_args((BUCKET, "b", {"bucket": "b"})))
    assert message.startswith("bucket b has no BucketPublicAccessBlock")


# --------------------------------------------------------------------------- IAM


def _doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.mark.parametrize(
    ("statement", "violations"),
    [
        ({"Sid": "Admin", "Effect": "Allow", "Action": "*", "Resource": "*"}, 1),
        ({"Sid": "AdminList", "Effect": "Allow", "Action": ["s3:GetObject", "*"], "Resource": ["*"]}, 1),
        ({"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b/*"}, 0),
        ({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}, 0),
        ({"Effect": "Deny", "Action": "*", "Resource": "*"}, 0),
    ],
)
def test_iam_wildcard_statements(pack: Pack, statement: dict[str, Any], violations: int) -> None:
    args = resource_args("aws:iam/rolePolicy:RolePolicy", {"role": "r", "policy": _doc(statement)})
    assert len(pack.messages("iam-no-wildcard-admin", args)) == violations


def test_iam_single_statement_object_and_message(pack: Pack) -> None:
    document = json.dumps(
        {"Version": "2012-10-17", "Statement": {"Sid": "All", "Effect": "Allow", "Action": "*", "Resource": "*"}}
    )
    [message] = pack.messages("iam-no-wildcard-admin", resource_args("aws:iam/policy:Policy", {"policy": document}))
    assert message.startswith("statement All allows Action '*' on Resource '*'")


def test_admin_access_attachments_and_inline_role_policies(pack: Pack) -> None:
    admin = "arn:aws:iam::aws:policy/AdministratorAccess"
    attachment = resource_args("aws:iam/rolePolicyAttachment:RolePolicyAttachment", {"role": "r", "policyArn": admin})
    assert len(pack.messages("iam-no-wildcard-admin", attachment)) == 1
    inline = {
        "assumeRolePolicy": "{}",
        "inlinePolicies": [{"name": "x", "policy": _doc({"Effect": "Allow", "Action": "*", "Resource": "*"})}],
    }
    assert len(pack.messages("iam-no-wildcard-admin", resource_args("aws:iam/role:Role", inline))) == 1


def test_iam_document_unknown_in_preview_is_left_to_the_engine(pack: Pack) -> None:
    # The engine turns this into an advisory "can't run policy during preview" and checks again on up.
    args = resource_args("aws:iam/policy:Policy", {"policy": UNKNOWN_STRING_VALUE})
    with pytest.raises(UnknownValueError):
        pack.messages("iam-no-wildcard-admin", args)


# --------------------------------------------------------------------------- stack limits on cloud resources

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"


def _pool(instance: str, max_size: int) -> dict[str, Any]:
    return {
        "clusterName": "c",
        "instanceTypes": [instance],
        "scalingConfig": {"minSize": 0, "maxSize": max_size, "desiredSize": 0},
        "tags": TAGS,
    }


def test_gpus_per_node_pool(pack: Pack) -> None:
    settings = stack_settings(quotas={"maxGpusPerPool": 32})
    platform = platform_args(settings)
    at_quota = resource_args(NODE_GROUP, _pool("g5.12xlarge", 8))
    over = resource_args(NODE_GROUP, _pool("g5.12xlarge", 10))
    cpu = resource_args(NODE_GROUP, _pool("m6i.large", 100))
    assert pack.messages("gpus-per-node-pool", platform, at_quota, cpu) == []
    [message] = pack.messages("gpus-per-node-pool", platform, over)
    assert "can grow to 40 GPUs (maxSize 10 x 4 GPUs), over the quota of 32" in message


def test_cloud_instance_types_on_the_allowlist(pack: Pack) -> None:
    settings = stack_settings(policy={"allowedInstanceTypes": ["g5.2xlarge", "ml.g5.2xlarge"]})
    platform = platform_args(settings)
    allowed = [resource_args(NODE_GROUP, _pool("g5.2xlarge", 2)), resource_args(NODE_GROUP, _pool("m6i.large", 2))]
    assert pack.messages("allowed-instance-types", platform, *allowed) == []
    [pool] = pack.messages("allowed-instance-types", platform, resource_args(NODE_GROUP, _pool("p5.48xlarge", 1)))
    assert pool.startswith("p5.48xlarge is not allowed in environment 'prod'")
    [variant] = pack.messages(
        "allowed-instance-types", platform, resource_args(ENDPOINT_CONFIG, _variants("ml.g6e.12xlarge"))
    )
    assert "ml.g6e.12xlarge is not allowed" in variant


def test_scaling_targets_and_hpas(pack: Pack) -> None:
    settings = stack_settings(quotas={"maxReplicasPerEndpoint": 8})
    platform = platform_args(settings)
    target = "aws:appautoscaling/target:Target"

    def scaling(low: int, high: int, namespace: str = "sagemaker") -> Any:
        props = {
            "serviceNamespace": namespace,
            "resourceId": "endpoint/e/variant/v1",
            "minCapacity": low,
            "maxCapacity": high,
        }
        return resource_args(target, props)

    def hpa(low: int, high: int) -> Any:
        return resource_args(
            "kubernetes:autoscaling/v2:HorizontalPodAutoscaler", {"spec": {"minReplicas": low, "maxReplicas": high}}
        )

    assert pack.messages("autoscaling-bounds", platform, scaling(1, 8), hpa(2, 8), scaling(5, 50, "ecs")) == []
    [inverted] = pack.messages("autoscaling-bounds", platform, scaling(3, 2))
    assert "minCapacity/maxCapacity is 3/2: the minimum exceeds the maximum" in inverted
    [over] = pack.messages("autoscaling-bounds", platform, hpa(1, 9))
    assert "allows 9 replicas, over the quota of 8" in over


def test_cloud_training_runtimes(pack: Pack) -> None:
    pipeline = resource_args("aws:sagemaker/pipeline:Pipeline", _pipeline())
    [message] = pack.messages("training-max-runtime", pipeline)
    assert "StoppingCondition.MaxRuntimeInSeconds is not set" in message
    bounded = _pipeline(StoppingCondition={"MaxRuntimeInSeconds": 3600})
    assert pack.messages("training-max-runtime", resource_args("aws:sagemaker/pipeline:Pipeline", bounded)) == []

    job = {"metadata": {"name": "train"}, "spec": {"template": {}}}
    under_training = resource_args("kubernetes:batch/v1:Job", job, parents=("llmops:platform:Platform", TRAINING))
    elsewhere = resource_args("kubernetes:batch/v1:Job", job)
    assert len(pack.messages("training-max-runtime", under_training)) == 1
    assert pack.messages("training-max-runtime", elsewhere) == []
    job["spec"]["activeDeadlineSeconds"] = 3600
    assert (
        pack.messages("training-max-runtime", resource_args("kubernetes:batch/v1:Job", job, parents=(TRAINING,))) == []
    )


# --------------------------------------------------------------------------- EKS API endpoint


def _cluster(vpc: dict[str, Any]) -> Any:
    return resource_args("aws:eks/cluster:Cluster", {"name": "c", "vpcConfig": {"subnetIds": ["s"], **vpc}})


def test_a_production_eks_endpoint_open_to_everyone_is_flagged(pack: Pack) -> None:
    prod = platform_args(stack_settings())
    [open_public] = pack.messages(
        "eks-endpoint-access", prod, _cluster({"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]})
    )
    assert "public to 0.0.0.0/0 in production" in open_public and "stacks/Pulumi.teststack.yaml" in open_public
    # AWS's default for an unset list is every address.
    assert len(pack.messages("eks-endpoint-access", prod, _cluster({"endpointPublicAccess": True}))) == 1
    assert (
        pack.messages(
            "eks-endpoint-access",
            prod,
            _cluster({"endpointPublicAccess": True, "publicAccessCidrs": ["203.0.113.0/24"]}),
        )
        == []
    )
    assert pack.messages("eks-endpoint-access", prod, _cluster({"endpointPublicAccess": False})) == []
    # Outside production the default (open, IAM-authenticated) is what GitHub-hosted runners need.
    dev = platform_args(stack_settings(environment="dev", production=False))
    assert (
        pack.messages(
            "eks-endpoint-access", dev, _cluster({"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]})
        )
        == []
    )
