"""Pulumi components of the LLMOps platform.

One component class per capability (GpuCluster, ModelEndpoint, TrainingJob,
MonitoringStack) and the composition root (Platform). Each class is the public
contract (its type token `llmops:<module>:<Type>` and child names are part of
every URN); the target-specific children live in `components/aws/` and
`components/local/`.
"""
