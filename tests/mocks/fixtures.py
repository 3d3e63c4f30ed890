"""A small registry for precise assertions: one model per interesting shape, as plain dicts.

Tests edit these dicts (bump a version, move traffic, drop a model) and write
them to a temporary `models/` directory beside copies of the configs they name,
so every registry goes through the real loader and validator.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import yaml

from llmops.registry import SCHEMA_HEADER, Registry, load_registry
from llmops.settings import load_all_stacks

from .harness import REPO

SHA_A = "0123456789abcdef0123456789abcdef01234567"
SHA_B = "89abcdef0123456789abcdef0123456789abcdef"
LONG_NAME = "contract-review-assistant-instruct-tuned"  # 40 characters, the most a name may have
LONG_VERSION = "2025-06-01-rc1.hotfix"  # 21 characters, the most a version may have


def hub_weights(name: str, revision: str = SHA_A) -> dict[str, Any]:
    return {"huggingface": {"repo": f"example/{name}", "revision": revision}}


def _model(name: str, owner: str, config: str, serving: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An entry whose versions are its variants', each on the hub repo unless `versions` says otherwise."""
    versions = {v["version"]: hub_weights(name) for v in serving["variants"]} | extra.pop("versions", {})
    return {
        "name": name,
        "owner": owner,
        "description": f"{name} fixture",
        "task": "text-generation",
        "source": {"config": f"configs/{config}"},
        "versions": versions,
        "serving": serving,
        "deployments": extra.pop("deployments", {"dev": {}, "staging": {}, "prod": {}}),
        "monitoring": extra.pop(
            "monitoring", {"slo": {"p95_latency_ms": 1500, "error_rate": 0.02, "gpu_memory_utilization": 0.9}}
        ),
        "compliance": {
            "licence": "apache-2.0",
            "model_card": f"docs/model-cards/{name}.md",
            "evaluation": [{"suite": "assistant-basics", "metric": "accuracy", "threshold": 0.5}],
        },
        **extra,
    }


def models() -> dict[str, dict[str, Any]]:
    """Fixture entries by name (fresh copies: tests mutate them)."""
    return copy.deepcopy(
        {
            # SageMaker, TGI, two weighted versions (the second from S3), fine-tuned by a SageMaker pipeline.
            "chat-sm": _model(
                "chat-sm",
                "search-team",
                "qwen2.5-7b.json",
                {
                    "runtime": "tgi",
                    "platform": "sagemaker",
                    "dtype": "bf16",
                    "max_context": 4096,
                    "concurrency": 4,
                    "max_new_tokens": 512,
                    "min_replicas": 1,
                    "max_replicas": 2,
                    "autoscaling": {"target_invocations_per_replica": 40},
                    "variants": [{"version": "v1", "weight": 90}, {"version": "v2", "weight": 10}],
                },
                versions={
                    "v2": {"s3": {"uri": "s3://example-models/chat-sm/v2/", "version_id": "3HL4kqtJlcpXroDTDmJ"}}
                },
                training={
                    "base_model": "Qwen/Qwen2.5-7B",
                    "dataset": {"uri": "s3://example-data/chat/train/", "version": "2025-06-01"},
                    "hyperparameters": {"epochs": 1, "learning_rate": 0.00002},
                    "instance": "ml.g5.12xlarge",
                    "spot": True,
                    "checkpoint": "s3://example-checkpoints/chat-sm/",
                    "max_runtime": 14400,
                },
                # dev's budget holds the fixture registry at full scale (every endpoint at max_replicas).
                deployments={"dev": {"max_replicas": 1}, "staging": {}, "prod": {}},
            ),
            # EKS, vLLM, three versions in a 60/30/10 split over three replicas, fine-tuned by a Job.
            "code-eks": _model(
                "code-eks",
                "devtools",
                "mistral-7b-v0.3.json",
                {
                    "runtime": "vllm",
                    "platform": "eks",
                    "dtype": "bf16",
                    "max_context": 4096,
                    "concurrency": 8,
                    "min_replicas": 3,
                    "max_replicas": 6,
                    "variants": [
                        {"version": "a", "weight": 60},
                        {"version": "b", "weight": 30},
                        {"version": "c", "weight": 10},
                    ],
                },
                versions={"c": {"s3": {"uri": "s3://example-models/code-eks/c/", "version_id": "v7"}}},
                # Within each stack's replica quota (dev 2, staging 4).
                deployments={
                    "dev": {"min_replicas": 1, "max_replicas": 2},
                    "staging": {"max_replicas": 4},
                    "prod": {},
                },
                training={
                    "base_model": "mistralai/Mistral-7B-v0.3",
                    "platform": "eks",
                    "dataset": {"uri": "s3://example-data/code/", "version": "7"},
                    "instance": "ml.g5.2xlarge",
                    "checkpoint": "s3://example-checkpoints/code-eks/",
                    "max_runtime": 7200,
                },
            ),
            # SageMaker, LMI, an explicit multi-GPU instance and a tight latency SLO.
            "summarize-lmi": _model(
                "summarize-lmi",
                "docs-team",
                "llama-3.1-8b.json",
                {
                    "runtime": "lmi",
                    "dtype": "bf16",
                    "max_context": 8192,
                    "concurrency": 16,
                    "instance": "ml.g5.12xlarge",
                    "min_replicas": 1,
                    "max_replicas": 2,
                    "variants": [{"version": "2024-11", "weight": 100}],
                },
                # Too big for dev's budget and GPU quota; one instance keeps staging's budget at full scale.
                deployments={"staging": {"max_replicas": 1}, "prod": {}},
                monitoring={"slo": {"p95_latency_ms": 800, "error_rate": 0.005}},
            ),
            # The longest name and version the registry allows: every derived name must still fit.
            LONG_NAME: _model(
                LONG_NAME,
                "platform-ml",
                "tinyllama-1.1b.json",
                {
                    "runtime": "tgi",
                    "max_context": 2048,
                    "variants": [{"version": LONG_VERSION, "weight": 100}],
                },
                training={
                    "base_model": "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
                    "dataset": {"uri": "s3://example-data/tiny/", "version": "1"},
                    "instance": "ml.g6e.xlarge",
                    "checkpoint": "s3://example-checkpoints/contract-review/",
                    "max_runtime": 3600,
                },
            ),
        }
    )


def write_registry(root: Path, entries: dict[str, dict[str, Any]], keep: tuple[str, ...] = ()) -> Registry:
    """Entries as `root/models/<name>.yaml` (with the configs and evaluation suites they name), loaded and
    validated; `keep`: folders of `root/models` left as they are (datasets a test put there)."""
    models_dir = root / "models"
    for path in models_dir.glob("*") if models_dir.exists() else []:
        if path.name not in keep:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    (models_dir / "configs").mkdir(parents=True)
    for name, entry in entries.items():
        (models_dir / f"{name}.yaml").write_text(f"{SCHEMA_HEADER}\n{yaml.safe_dump(entry, sort_keys=False)}")
        config = entry["source"]["config"]
        shutil.copy(REPO / "models" / config, models_dir / config)
        for gate in entry.get("compliance", {}).get("evaluation") or []:
            suite = Path("evals") / gate["suite"]
            if not (models_dir / suite).is_dir():
                shutil.copytree(REPO / "models" / suite, models_dir / suite)
    return load_registry(models_dir, load_all_stacks(REPO / "stacks"))


def with_staging_records(props: dict[str, Any]) -> dict[str, Any]:
    """An endpoint's inputs as they are once `llmops ci deploy` recorded a passing staging evaluation
    of each version (prod's evaluation gate requires one; tests/policy checks it refuses without)."""
    if not props.get("evaluationGates"):
        return props
    record = {
        "suiteSha256": "a" * 64,
        "weights": "hf://example/model@rev",
        "lmEvalVersion": "0.4.13",
        "evaluatedAt": "2026-11-30T12:00:00+00:00",
        "where": "sagemaker-endpoint:staging",
        "passed": True,
    }
    records = [
        {**record, "suite": g["suite"], "metrics": {g["metric"]: g["threshold"]}} for g in props["evaluationGates"]
    ]
    return {**props, "evaluationRecords": {v["version"]: records for v in props.get("variants") or []}}
