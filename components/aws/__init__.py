"""The AWS target: builder functions that give each component shell its AWS children.

`cluster` (VPC, EKS, GPU node groups, add-ons), `sagemaker_endpoint` and
`eks_endpoint` (model serving), `training` (SageMaker pipelines or Kubernetes
Jobs) and `monitoring` (SNS, CloudWatch, Prometheus). Shared building blocks
(names, IAM documents, encrypted buckets) live in `common`.
"""
