"""The AWS target: builders that give each capability component its AWS children.

`cluster/` (network, EKS control plane, node groups, add-ons), `sagemaker_endpoint`
and `eks_endpoint` (model serving), `training` (SageMaker pipelines or Kubernetes
Jobs) and `monitoring` (SNS, CloudWatch, Prometheus); each composes child
components, one resource group each. Building blocks live in modules named for
what they hold: `naming`, `account`, `iam`, `storage`, `placement`, `kubernetes`
(`common` only re-exports them for code written against the old path).
"""
