"""Measured load and cost per model version, and right-sizing proposals from it.

`data` holds what a window of serving measured (tokens, replica time, busy time,
per-minute concurrency, latency); `prometheus` reads it from the local target's
Prometheus, `cloudwatch` from CloudWatch for SageMaker endpoints, `eks` from an EKS
cluster's Prometheus (the runtimes', kube-state-metrics' and DCGM's series), which
`cluster_access` reaches through the API server's service proxy; `measured` prices
it ($ per 1M tokens beside today's estimate); `rightsize` turns it into replica
counts, an instance and scale to zero, and into a registry commit; `cli` holds
`llmops cost --measured` and `llmops rightsize`.
"""
