"""Kubernetes helpers of the kube target that run outside the Pulumi program."""
