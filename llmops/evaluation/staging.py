"""The staging gate of `llmops ci deploy`: after staging's update and before prod, run each
hosted model's gated suites against its staging endpoint and record the outcome.

Every variant version is measured through its own production variant
(`TargetVariant`), the records go to the records dir (`llmops.evaluation.records`),
where prod's evaluation-gate policy finds them, and a failing gate stops the
promotion: prod is never previewed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmops.evaluation.gates import judge_all
from llmops.evaluation.records import records_dir, write_record
from llmops.evaluation.suites import load_suite
from llmops.naming import variant_name
from llmops.registry import load_registry
from llmops.settings import load_all_stacks

STAGING = "staging"


class StagingGateFailed(RuntimeError):
    """A hosted model missed a gate on the staging endpoint."""


def staging_gate(
    root: Path, stack: str, environment: str | None, outputs: dict[str, Any], client: Any, log: Callable[[str], None]
) -> list[Path]:
    """Measure and record every gated model of `stack` (a staging stack); raise on a failing gate."""
    if environment != STAGING:
        return []
    from llmops.evaluation.harness import run_suite
    from llmops.evaluation.sagemaker_lm import SageMakerLM

    stacks = load_all_stacks(root / "stacks")
    registry = load_registry(root / "models", stacks)
    written: list[Path] = []
    failures: list[str] = []
    for deployment in registry.deployed_to(STAGING):
        gates = deployment.model.compliance.evaluation
        endpoint = ((outputs.get("endpoints") or {}).get(deployment.name) or {}).get("endpointName")
        if not gates or not endpoint:
            continue
        for variant in deployment.variants:
            lm = SageMakerLM(endpoint, client, variant=variant_name(variant.version))
            source = deployment.variant_source(variant).uri
            records = {}
            for name in dict.fromkeys(g.suite for g in gates):
                log(f"{stack}: {deployment.name} {variant.version}: running {name} on {endpoint}")
                records[name] = run_suite(
                    load_suite(root / "models", name),
                    lm,
                    model=deployment.name,
                    weights=source,
                    where=f"sagemaker-endpoint:{endpoint}/{variant_name(variant.version)}",
                )
            verdicts = judge_all(gates, records)
            for name, record in records.items():
                passed = all(v.passed for v in verdicts if v.gate.suite == name)
                written.append(write_record(records_dir(root), variant.version, record, passed))
            failures += [f"{deployment.name} {variant.version}: {v.explain()}" for v in verdicts if not v.passed]
    if failures:
        raise StagingGateFailed("evaluation gate failed on staging; prod is not deployed:\n" + "\n".join(failures))
    return written
