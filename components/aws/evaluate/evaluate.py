"""Run the registry's evaluation suites on a trained model: the entry point of the pipeline's
evaluation step (a SageMaker processing job in the Hugging Face PyTorch container).

Inputs: the training step's model.tar.gz in /opt/ml/processing/model, this code (with the
suites under evals/) in /opt/ml/processing/code; GATES (JSON: the registry's gates) and
LM_EVAL_VERSION in the environment, and MODEL_PACKAGE_GROUP, whose latest approved package
(the serving champion) was registered with its own evaluation.json. Output:
/opt/ml/processing/evaluation/evaluation.json, `{suite: {metric: {value, threshold,
passed}}}`, with `serving` and `regression` for gates that set `max_regression_vs_serving`,
plus a `_record` of what produced it; the pipeline's condition step reads it with JsonGet.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

BASE = Path("/opt/ml/processing")


def main() -> int:
    gates = json.loads(os.environ["GATES"])
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", f"lm-eval=={os.environ['LM_EVAL_VERSION']}"], check=True
    )
    model = BASE / "model"
    for archive in model.glob("*.tar.gz"):
        with tarfile.open(archive) as tar:
            tar.extractall(model, filter="data")
    code = BASE / "code"
    sys.path.insert(0, str(code))  # suites' helpers import the trainer's chat rendering (llmops.local.train)
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=str(model), batch_size=8)
    report: dict[str, dict[str, object]] = {}
    for suite in sorted({g["suite"] for g in gates}):
        out = lm_eval.simple_evaluate(
            model=lm,
            tasks=[suite],
            task_manager=TaskManager(include_path=str(code / "evals" / suite), include_defaults=False),
            apply_chat_template=True,
            bootstrap_iters=0,
        )
        metrics = {k.split(",")[0]: v for k, v in out["results"][suite].items() if "," in k and "_stderr" not in k}
        for g in (g for g in gates if g["suite"] == suite):
            value = float(metrics[g["metric"]])
            passed = value >= g["threshold"] if g["higher_is_better"] else value <= g["threshold"]
            report.setdefault(suite, {})[g["metric"]] = {"value": value, "threshold": g["threshold"], "passed": passed}
    group = os.environ.get("MODEL_PACKAGE_GROUP", "")
    if group and any(g.get("max_regression_vs_serving") is not None for g in gates):
        import boto3

        champion = champion_report(boto3.client("sagemaker"), boto3.client("s3"), group)
        challenge(report, champion, gates)
    report["_record"] = {
        "lmEvalVersion": lm_eval.__version__ if hasattr(lm_eval, "__version__") else os.environ["LM_EVAL_VERSION"],
        "evaluatedAt": dt.datetime.now(dt.UTC).isoformat(),
        "where": f"sagemaker-processing:{os.environ.get('PROCESSING_JOB_NAME', 'unknown')}",
    }
    out_dir = BASE / "evaluation"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "evaluation.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    return 0


def champion_report(sagemaker: Any, s3: Any, group: str) -> dict[str, Any] | None:
    """The evaluation.json the group's latest approved package was registered with; None when
    no package is approved yet or it carries no report (the first version has no champion)."""
    listed = sagemaker.list_model_packages(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )
    summaries = listed.get("ModelPackageSummaryList") or []
    if not summaries:
        return None
    package = sagemaker.describe_model_package(ModelPackageName=summaries[0]["ModelPackageArn"])
    uri = package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri", "")
    if not uri.startswith("s3://"):
        return None
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    report: dict[str, Any] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return report


def challenge(report: dict[str, Any], champion: dict[str, Any] | None, gates: list[dict[str, Any]]) -> None:
    """Add the champion's value and the candidate's regression from it to each gate that bounds
    it (0 without a champion); a regression beyond the bound fails the gate."""
    for g in gates:
        bound = g.get("max_regression_vs_serving")
        if bound is None:
            continue
        entry = report[g["suite"]][g["metric"]]
        serving = (((champion or {}).get(g["suite"]) or {}).get(g["metric"]) or {}).get("value")
        if serving is None:
            regression = 0.0
        else:
            regression = float(serving) - entry["value"] if g["higher_is_better"] else entry["value"] - float(serving)
        entry.update(serving=serving, regression=regression, passed=entry["passed"] and regression <= bound)


if __name__ == "__main__":
    raise SystemExit(main())
