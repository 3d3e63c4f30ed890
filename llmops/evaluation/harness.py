"""Run one suite with lm-evaluation-harness and turn its output into an EvaluationRecord.

The suite's folder is lm-eval's `include_path` (the harness's own task index is not
loaded: it is slow and the suites ship their data). A local model runs in this
process through lm-eval's Hugging Face model class on the artifact folder; a
remote one through any lm-eval `LM` (see `sagemaker_lm`). Nothing is downloaded:
the hub and datasets libraries are put offline before they are imported.
"""

from __future__ import annotations

import logging
import math
import os
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from llmops.evaluation.record import WORST_EXAMPLES, EvaluationRecord, now, this_host
from llmops.evaluation.suites import Suite

# Offline, and without progress bars: they are not lines, and would garble `pulumi up`'s output.
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TQDM_DISABLE": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
}
# tqdm reads its environment overrides when it is first imported: set them before anything imports it.
for _key, _value in OFFLINE.items():
    os.environ.setdefault(_key, _value)


def lm_eval_version() -> str:
    return version("lm_eval")


def local_model(path: Path, batch_size: int = 16) -> Any:
    """lm-eval's Hugging Face model over a local checkpoint folder, on CPU."""
    os.environ.update(OFFLINE)
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(path), device="cpu", batch_size=batch_size, dtype="float32")


def run_suite(suite: Suite, lm: Any, *, model: str, weights: str, where: str | None = None) -> EvaluationRecord:
    """Measure `suite` on `lm`; the record names `weights` as what was evaluated."""
    os.environ.update(OFFLINE)
    import lm_eval
    from lm_eval.tasks import TaskManager

    logging.getLogger("lm_eval").setLevel(logging.ERROR)  # per-task notices, not results

    started = time.perf_counter()
    suite_sha = suite.sha256
    tasks = TaskManager(include_path=str(suite.path), include_defaults=False)
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=[suite.task],
        task_manager=tasks,
        apply_chat_template=True,
        log_samples=True,
        bootstrap_iters=0,
        random_seed=0,
        numpy_random_seed=0,
        torch_random_seed=0,
        fewshot_random_seed=0,
    )
    if out is None:
        raise RuntimeError(f"lm-eval returned no results for suite {suite.name}")
    results = out["results"][suite.task]
    metrics = {
        key.split(",")[0]: float(value)
        for key, value in results.items()
        if "," in key and "_stderr" not in key and isinstance(value, int | float) and math.isfinite(float(value))
    }
    higher = out.get("higher_is_better", {}).get(suite.task, {})
    samples = out.get("samples", {}).get(suite.task, [])
    return EvaluationRecord(
        suite=suite.name,
        suite_sha256=suite_sha,
        model=model,
        weights=weights,
        lm_eval_version=lm_eval_version(),
        evaluated_at=now(),
        where=where or this_host(),
        seconds=round(time.perf_counter() - started, 2),
        metrics=metrics,
        examples=len(samples),
        worst=worst_examples(samples, higher),
    )


def _score(value: Any) -> float | None:
    """One document's score, larger is better: a number, a (loglikelihood, length) pair per
    unit, or a record with `correct` (the fairness probe's per-answer record)."""
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        return float(value[0]) / max(float(value[1]), 1.0)
    if isinstance(value, dict) and "correct" in value:
        return float(value["correct"])
    return None


def worst_examples(
    samples: list[dict[str, Any]], higher: dict[str, bool], n: int = WORST_EXAMPLES
) -> list[dict[str, Any]]:
    """The `n` documents that scored worst on the suite's first metric, with what the model said."""
    if not samples:
        return []
    metric = next((m for m in higher if m in samples[0]), None)
    if metric is None:
        return []
    sign = 1.0 if higher.get(metric, True) or isinstance(samples[0][metric], list | tuple | dict) else -1.0
    scored = [(s, v) for s in samples if (v := _score(s[metric])) is not None]
    if {v for _, v in scored} <= {0.0, 1.0}:
        # Right/wrong scores: only the wrong ones are examples worth showing.
        best = 1.0 if sign > 0 else 0.0
        scored = [(s, v) for s, v in scored if v != best]
    ranked = sorted(((sign * v, s) for s, v in scored), key=lambda p: p[0])
    out = []
    for _, sample in ranked[:n]:
        response = sample.get("filtered_resps") or sample.get("resps") or [""]
        while isinstance(response, list) and response:
            response = response[0]
        prompt = sample.get("arguments", [[""]])
        doc = sample.get("doc", {})
        out.append(
            {
                "input": str(doc.get("question") or doc.get("request") or doc.get("text") or prompt)[:200],
                "target": str(sample.get("target", ""))[:200],
                "response": str(response)[:200] if not isinstance(response, float) else "",
                "score": _score(sample[metric]),
            }
        )
    return out
