"""Deprecated: the names this module held now live in modules named for what they hold.

Kept only so code written against the old path keeps importing; nothing in this
repository imports it, and it goes once no branch does. Use:
`naming` (child names, SageMaker and alarm names), `account` (partition, account),
`iam` (trust policies, statements), `storage` (KMS keys, encrypted buckets),
`placement` (GPU pools, taint/toleration), `kubernetes` (namespace, labels, Helm).
"""

from components.aws.account import account_id, partition
from components.aws.iam import (
    ecr_pull,
    irsa_trust,
    log_statement,
    metrics_statement,
    policy_document,
    repository_arn,
    s3_read,
    s3_read_write,
    service_trust,
    statement,
)
from components.aws.kubernetes import SERVING_NAMESPACE, helm_release, k8s_labels
from components.aws.naming import (
    AWS_AUTONAME_SUFFIX,
    K8S_AUTONAME_SUFFIX,
    SLO_ALARMS,
    child,
    sagemaker_endpoint_name,
    slo_alarm_name,
    variant_name,
)
from components.aws.placement import GPU_TAINT, GPU_TOLERATION, pool_for
from components.aws.storage import encrypted_bucket, kms_key

__all__ = [
    "AWS_AUTONAME_SUFFIX",
    "GPU_TAINT",
    "GPU_TOLERATION",
    "K8S_AUTONAME_SUFFIX",
    "SERVING_NAMESPACE",
    "SLO_ALARMS",
    "account_id",
    "child",
    "ecr_pull",
    "encrypted_bucket",
    "helm_release",
    "irsa_trust",
    "k8s_labels",
    "kms_key",
    "log_statement",
    "metrics_statement",
    "partition",
    "policy_document",
    "pool_for",
    "repository_arn",
    "s3_read",
    "s3_read_write",
    "sagemaker_endpoint_name",
    "service_trust",
    "slo_alarm_name",
    "statement",
    "variant_name",
]
