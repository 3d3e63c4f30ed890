"""Rules on the registry's intent, read from the llmops components' inputs.

They judge what a model owner asked for (instance, replicas, GPUs, revision,
evaluation, licence, training settings) and what a stack declares (budget,
quotas, allowlists), so they hold identically on the aws and the local target.
Each message names the file and field to change.
"""

from __future__ import annotations

from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs

from llmops.evaluation.records import TRACE_FIELDS
from policies.facts import (
    ENDPOINT,
    PLATFORM,
    TRAINING,
    EndpointFacts,
    PlatformFacts,
    TrainingFacts,
    needs_allowlist,
)
from policies.props import fmt, usd


def allowed_instance_types(args: ResourceValidationArgs, report: ReportViolation, stack: PlatformFacts | None) -> None:
    """GPU instance types of endpoints and training jobs must be on the stack's allowlist."""
    if stack is None or not stack.allowed_instance_types:
        return  # an empty allowlist means any catalog type (llmops.settings.PolicySettings)
    allowed = stack.allowed_instance_types
    where = f"{stack.stack_file}: llmops:policy.allowedInstanceTypes ({', '.join(allowed)})"
    if args.resource_type == ENDPOINT:
        ep = EndpointFacts.from_props(args.props)
        if ep.instance_type not in allowed and needs_allowlist(ep.instance_type):
            report(
                f"{ep.file}: {ep.model} runs on {ep.instance_type}, which environment {ep.environment!r} "
                f"does not allow ({where}). Set serving.instance or deployments.{ep.environment}.instance "
                "to an allowed type, or add the type to the stack's allowlist.",
                None,
            )
    elif args.resource_type == TRAINING:
        job = TrainingFacts.from_props(args.props)
        if job.instance_type not in allowed and needs_allowlist(job.instance_type):
            report(
                f"{job.file}: training.instance {job.instance_type} is not allowed in environment "
                f"{job.environment!r} ({where}).",
                None,
            )


def gpus_per_endpoint(args: ResourceValidationArgs, report: ReportViolation, stack: PlatformFacts | None) -> None:
    """An endpoint at its largest scale may hold at most the stack's GPUs-per-endpoint quota."""
    if args.resource_type != ENDPOINT or stack is None:
        return
    ep = EndpointFacts.from_props(args.props)
    total = ep.max_replicas * ep.gpus_per_serving_replica
    quota = stack.quotas.max_gpus_per_endpoint
    if total > quota:
        report(
            f"{ep.file}: {ep.model} can grow to {total} GPUs ({ep.max_replicas} replicas x "
            f"{ep.gpus_per_serving_replica} GPUs on {ep.instance_type}), over the quota of {quota} "
            f"({stack.stack_file}: llmops:quotas.maxGpusPerEndpoint). Lower max_replicas for "
            f"{ep.environment!r} or choose a smaller instance.",
            None,
        )


def autoscaling_bounds(args: ResourceValidationArgs, report: ReportViolation, stack: PlatformFacts | None) -> None:
    """Replica bounds of an endpoint: min <= max, and max within the stack's quota."""
    if args.resource_type != ENDPOINT:
        return
    ep = EndpointFacts.from_props(args.props)
    if ep.min_replicas > ep.max_replicas:
        report(
            f"{ep.file}: {ep.model} in {ep.environment!r} has min_replicas {ep.min_replicas} > "
            f"max_replicas {ep.max_replicas}; autoscaling could never reach its minimum.",
            None,
        )
    if stack is not None and ep.max_replicas > stack.quotas.max_replicas_per_endpoint:
        report(
            f"{ep.file}: {ep.model} in {ep.environment!r} may scale to {ep.max_replicas} replicas, over the "
            f"quota of {stack.quotas.max_replicas_per_endpoint} ({stack.stack_file}: "
            "llmops:quotas.maxReplicasPerEndpoint). Lower max_replicas or raise the quota.",
            None,
        )


def stack_budget(args: ResourceValidationArgs, report: ReportViolation, stack: PlatformFacts | None) -> None:
    """A stack's monthly cost (llmops.cost over the catalog) must fit its budget, expected and at
    its maximum (every endpoint at max_replicas, every pool at maxSize): autoscaling spends that
    without anyone approving it."""
    if args.resource_type != PLATFORM:
        return
    facts = PlatformFacts.from_props(args.props)
    budget = facts.budget_monthly_usd
    if budget <= 0:
        return  # a budget of 0 means none
    for label, cost, at_max in (
        ("would cost", facts.monthly_cost_usd, False),
        ("could cost at full scale", facts.max_monthly_cost_usd, True),
    ):
        if cost <= budget:
            continue
        lines = sorted(facts.cost_top, key=lambda line: line.max_monthly_usd if at_max else line.monthly_usd)
        top = "; ".join(
            f"{line.kind} {line.name}: {fmt(line.max_count if at_max else line.count)} x {line.instance_type} = "
            f"{usd(line.max_monthly_usd if at_max else line.monthly_usd)}"
            for line in reversed(lines)
        )
        fix = " Lower max_replicas or pool maxSize, or raise the budget." if at_max else ""
        report(
            f"stack {facts.stack!r} {label} {usd(cost)}/month, over its budget of {usd(budget)} by "
            f"{usd(cost - budget)} ({facts.stack_file}: llmops:budgetMonthlyUsd). "
            f"Biggest contributors: {top or 'none recorded'}. See `llmops cost --stack {facts.stack}`.{fix}",
            None,
        )
        return  # over at the expected cost is over at the maximum too: one report


def training_spot_checkpoint(
    args: ResourceValidationArgs, report: ReportViolation, stack: PlatformFacts | None
) -> None:
    """Non-production cloud training uses spot capacity and checkpoints, so an
    interruption resumes instead of restarting."""
    if args.resource_type != TRAINING:
        return
    job = TrainingFacts.from_props(args.props)
    if job.target != "aws" or job.production:
        return  # the local target trains on this machine: spot does not exist there
    if not job.spot:
        report(f"{job.file}: training.spot is false in non-production environment {job.environment!r}.", None)
    if not job.checkpoint:
        report(
            f"{job.file}: training.checkpoint is not set in {job.environment!r}; spot jobs need an "
            "s3:// checkpoint location to resume after an interruption.",
            None,
        )


def training_max_runtime(args: ResourceValidationArgs, report: ReportViolation, stack: PlatformFacts | None) -> None:
    """Every training job stops at a maximum runtime."""
    if args.resource_type != TRAINING:
        return
    job = TrainingFacts.from_props(args.props)
    if job.max_runtime is None or job.max_runtime <= 0:
        report(f"{job.file}: training.max_runtime is not set; every job needs a limit in seconds.", None)


def pinned_model_revision(args: ResourceValidationArgs, report: ReportViolation, stack: PlatformFacts | None) -> None:
    """Gated endpoints serve weights pinned to a commit sha or version id, never a branch."""
    if args.resource_type != ENDPOINT:
        return
    ep = EndpointFacts.from_props(args.props)
    if not ep.gated:
        return
    for variant in ep.variants:
        if not variant.get("pinned", False):
            report(
                f"{ep.file}: variant {variant.get('version')} serves {variant.get('source')}, which is not "
                f"pinned; {ep.environment!r} needs a 40-hex commit sha in "
                f"versions.{variant.get('version')}.huggingface.revision (or a version_id for s3).",
                None,
            )


def evaluation_gate(args: ResourceValidationArgs, report: ReportViolation, stack: PlatformFacts | None) -> None:
    """Gated endpoints declare evaluation gates; a production version serves only with a passing,
    traceable record of every gate (suite and its hash, weights, lm-eval version, when, where)."""
    if args.resource_type != ENDPOINT:
        return
    ep = EndpointFacts.from_props(args.props)
    if not ep.gated:
        return
    if not ep.evaluation_gates:
        report(
            f"{ep.file}: compliance.evaluation declares no gate; {ep.environment!r} serves only models "
            "whose rollouts pass measured gates ({suite, metric, threshold}).",
            None,
        )
        return
    if not ep.production:
        return  # the local target's Evaluation resources gate the rollout inside the graph
    for variant in ep.variants:
        version = str(variant.get("version"))
        records = {str(r.get("suite")): r for r in ep.evaluation_records.get(version, [])}
        for gate in ep.evaluation_gates:
            problem = _record_problem(gate, records.get(str(gate.get("suite"))))
            if problem:
                report(
                    f"{ep.file}: version {version} may not serve in {ep.environment!r}: {problem} "
                    "(`llmops ci deploy` records it from the staging endpoint; `llmops eval run` measures it).",
                    None,
                )


# A version not measured on staging yet: before a merge that is expected (`llmops ci policy`
# reports it as pending, see llmops/ci/offline_policy.py), so its wording is part of the pack's contract.
NOT_YET_RECORDED = "no evaluation record of suite"


def _record_problem(gate: dict[str, Any], record: dict[str, Any] | None) -> str | None:
    """Why `record` is no evidence that `gate` passed, or None when it is."""
    suite, metric = gate.get("suite"), gate.get("metric")
    if record is None:
        return f"{NOT_YET_RECORDED} {suite}"
    missing = [f for f in TRACE_FIELDS if not record.get(f)]
    if missing:
        return f"the record of suite {suite} is not traceable (missing {', '.join(missing)})"
    value = (record.get("metrics") or {}).get(metric)
    if value is None:
        return f"the record of suite {suite} has no {metric}"
    threshold = float(gate["threshold"])
    ok = value >= threshold if gate.get("higher_is_better", True) else value <= threshold
    if not ok or not record.get("passed"):
        return f"{suite}/{metric} measured {fmt(value)} against threshold {fmt(threshold)} ({record.get('where')})"
    return None


def licence_allowlist(args: ResourceValidationArgs, report: ReportViolation, stack: PlatformFacts | None) -> None:
    """Gated endpoints serve models whose licence is on the stack's allowlist."""
    if args.resource_type != ENDPOINT:
        return
    ep = EndpointFacts.from_props(args.props)
    if not ep.gated:
        return
    allowed = stack.licence_allowlist if stack is not None else PlatformFacts.from_props({}).licence_allowlist
    if ep.licence.casefold() not in {a.casefold() for a in allowed}:
        where = f"{stack.stack_file}: llmops:policy.licenceAllowlist" if stack else "the default licence allowlist"
        report(
            f"{ep.file}: compliance.licence {ep.licence!r} is not on the allowlist for {ep.environment!r} "
            f"({where}: {', '.join(allowed)}).",
            None,
        )
