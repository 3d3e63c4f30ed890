"""Evaluation: a model's gated suites (models/evals/) measured on its candidate weights, gating its rollout.

One per model: every suite is measured and recorded on its own, but the gates pass or
fail together, so a version is never half-judged and the previous state is always the
serving version's complete record (the champion a challenger is compared with).

local: a dynamic resource that runs each suite with lm-eval on the artifact (or
reuses the cached record of the same weights, suite and harness) and fails when a
gate fails, before any replica of the candidate starts. aws: the SageMaker
pipeline's evaluation and condition steps (components/aws/evaluation.py) and
`llmops ci deploy`'s staging check gate the rollout instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from components.context import StackContext
from components.training_job import TrainingJob
from llmops.registry import Deployment, EvaluationGate


@dataclass
class EvaluationArgs:
    context: StackContext
    deployment: Deployment
    gates: list[EvaluationGate]
    training: TrainingJob | None = None


class Evaluation(pulumi.ComponentResource):
    # {version: {suite: {weights, metrics, gates: {metric: {value, threshold, passed, serving?}}, ...}}}
    results: pulumi.Output[dict[str, Any]]

    def __init__(self, name: str, args: EvaluationArgs, opts: pulumi.ResourceOptions | None = None):
        facts = {
            "model": args.deployment.name,
            "environment": args.context.environment,
            "gates": [g.model_dump() for g in args.gates],
        }
        super().__init__("llmops:evaluation:Evaluation", name, facts, opts)
        from components.local.evaluation import build_evaluation

        build_evaluation(self, name, args)
        self.register_outputs({"results": self.results})
