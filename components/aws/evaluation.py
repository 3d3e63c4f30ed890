"""The SageMaker pipeline's evaluation: a processing step that runs the registry's suites on the
trained model and writes evaluation.json, a condition step with one JsonGet comparison per
gate, and a fail step. The model package is registered only in the condition's passing branch,
with its evaluation.json as the package's model-quality statistics.

Champion/challenger: each run writes its report under its own execution id, and the step
reads the report of the group's latest approved package (the version that serves), so a
gate's `max_regression_vs_serving` is one more JsonGet comparison on `regression`.

The step runs `evaluate/evaluate.py` in the Hugging Face PyTorch training image the
sagemaker SDK's tables name (the same container family as training), with the suites
(models/evals/) and the trainer's chat rendering in a code archive the program uploads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.aws.archive import reproducible_targz
from llmops.registry import EVALS_DIR, EvaluationGate

HERE = Path(__file__).resolve().parent
ENTRY = HERE / "evaluate" / "evaluate.py"
REPO = HERE.parent.parent
REPORT = "evaluation.json"
ARCHIVE = "code.tar.gz"
CODE_DIR = "/opt/ml/processing/code"
# What the suites' helpers import besides lm-eval (the held-out suite renders chat turns as training does).
SHARED = ("llmops/__init__.py", "llmops/local/__init__.py", "llmops/local/train.py")


@dataclass(frozen=True)
class EvaluationSpec:
    """What the evaluation step needs, resolved: the gates, where its code and report live, what runs it."""

    gates: list[EvaluationGate]
    code_uri: str
    output_uri: str
    image: str
    instance_type: str
    lm_eval_version: str
    package_group: str = ""  # whose latest approved package is the champion


def evaluation_archive(models_dir: Path, suites: list[str]) -> tuple[bytes, str]:
    """The entry script, the suites and the shared helpers as a reproducible tar.gz, and its sha256."""
    files: list[tuple[str, Path]] = [("evaluate.py", ENTRY)]
    files += [(rel, REPO / rel) for rel in SHARED]
    for suite in sorted(set(suites)):
        folder = models_dir / EVALS_DIR / suite
        files += [
            (f"evals/{suite}/{p.relative_to(folder).as_posix()}", p)
            for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
        ]
    return reproducible_targz((name, path.read_bytes()) for name, path in files)


def report_prefix(sdk: Any, spec: EvaluationSpec) -> Any:
    """This execution's own folder for evaluation.json: a later run never overwrites the report
    a registered package points at."""
    return sdk.Join(on="/", values=[spec.output_uri.rstrip("/"), sdk.ExecutionVariables.PIPELINE_EXECUTION_ID])


def package_metrics(sdk: Any, spec: EvaluationSpec) -> Any:
    """The registered package's model-quality statistics: this run's evaluation.json."""
    uri = sdk.Join(on="/", values=[spec.output_uri.rstrip("/"), sdk.ExecutionVariables.PIPELINE_EXECUTION_ID, REPORT])
    return sdk.ModelMetrics(
        model_quality=sdk.ModelQuality(statistics=sdk.MetricsSource(content_type="application/json", s3_uri=uri))
    )


def evaluation_steps(
    sdk: Any, session: Any, role_arn: str, spec: EvaluationSpec, model_data: Any, register: Any
) -> list[Any]:
    """[evaluate, gate]: `register` runs in the gate's passing branch, a FailStep in the other."""
    evaluate, report = _evaluate_step(sdk, session, role_arn, spec, model_data)

    def value(g: EvaluationGate, field: str) -> Any:
        return sdk.JsonGet(step_name=evaluate.name, property_file=report, json_path=f"{g.suite}.{g.metric}.{field}")

    conditions = [
        (sdk.ConditionGreaterThanOrEqualTo if g.higher_is_better else sdk.ConditionLessThanOrEqualTo)(
            left=value(g, "value"), right=g.threshold
        )
        for g in spec.gates
    ]
    conditions += [
        sdk.ConditionLessThanOrEqualTo(left=value(g, "regression"), right=g.max_regression_vs_serving)
        for g in spec.gates
        if g.max_regression_vs_serving is not None
    ]
    gates = ", ".join(
        f"{g.suite}/{g.metric} {'>=' if g.higher_is_better else '<='} {g.threshold:g}"
        + (f" and at most {g.max_regression_vs_serving:g} worse than serving" if g.max_regression_vs_serving else "")
        for g in spec.gates
    )
    fail = sdk.FailStep(
        name="EvaluationGateFailed",
        error_message=f"a gate failed ({gates}); see evaluation.json under {spec.output_uri}<execution id>/. "
        "The model was not registered.",
    )
    gate = sdk.ConditionStep(name="EvaluationGates", conditions=conditions, if_steps=[register], else_steps=[fail])
    return [evaluate, gate]


def _evaluate_step(sdk: Any, session: Any, role_arn: str, spec: EvaluationSpec, model_data: Any) -> tuple[Any, Any]:
    """The processing step that writes evaluation.json, and that report as a property file."""
    processor = sdk.Processor(
        role=role_arn,
        image_uri=spec.image,
        instance_count=1,
        instance_type=spec.instance_type,
        # Processing inputs arrive as files: the archive is unpacked where the entry script expects it.
        entrypoint=["bash", "-c", f"cd {CODE_DIR} && tar xzf {ARCHIVE} && exec python3 evaluate.py"],
        sagemaker_session=session,
        env={
            "GATES": _gates_json(spec.gates),
            "LM_EVAL_VERSION": spec.lm_eval_version,
            "HF_DATASETS_OFFLINE": "1",
            "MODEL_PACKAGE_GROUP": spec.package_group,
        },
    )
    inputs = [
        sdk.ProcessingInput(
            input_name=input_name,
            s3_input=sdk.ProcessingS3Input(s3_uri=uri, local_path=local, s3_data_type="S3Prefix", s3_input_mode="File"),
        )
        for input_name, uri, local in (
            ("model", model_data, "/opt/ml/processing/model"),
            ("code", spec.code_uri, CODE_DIR),
        )
    ]
    output = sdk.ProcessingOutput(
        output_name="evaluation",
        s3_output=sdk.ProcessingS3Output(
            s3_uri=report_prefix(sdk, spec), local_path="/opt/ml/processing/evaluation", s3_upload_mode="EndOfJob"
        ),
    )
    report = sdk.PropertyFile(name="EvaluationReport", output_name="evaluation", path=REPORT)
    step = sdk.ProcessingStep(
        name="Evaluate", step_args=processor.run(inputs=inputs, outputs=[output]), property_files=[report]
    )
    return step, report


def _gates_json(gates: list[EvaluationGate]) -> str:
    import json

    return json.dumps([g.model_dump() for g in gates], sort_keys=True)
