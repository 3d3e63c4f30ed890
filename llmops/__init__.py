"""llmops: the core of the LLMOps platform that is not Pulumi.

Registry schema and validation, GPU sizing, the instance catalog, cost,
change planning and the `llmops` CLI. Pulumi components live in `components/`.
"""

__version__ = "0.1.0"
