"""Training datasets on AWS are registry datasets: name@version, content pinned by md5, on both paths.

Runs the real program for the shipped `dev` stack (Mistral's SageMaker pipeline) and the
Platform for a fixture model trained by an EKS Job, under mocks, and the AWS training script's
own entry point. Proves: the train split of the registry dataset a model names is uploaded under
`datasets/<name>/<version>/` and is the training channel, the SageMaker training step and the
EKS Job both get that split's
file name and pinned md5, the training script refuses a split whose bytes differ from the pin
before it loads any model (and accepts the pinned one), and `llmops lineage` of the shipped
fine-tuned model names its dataset version with md5s.
Cannot prove: that SageMaker or EKS run the script (no AWS account here).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from llmops.datasets.registry import load_datasets
from llmops.settings import StackSettings

from .fixtures import models, write_registry
from .harness import REPO, run_platform, run_program

pytestmark = pytest.mark.mocks

DATASET = "support-tickets"
MISTRAL = "mistral-7b-instruct"


def _pinned_train() -> tuple[str, str, str]:
    """The shipped dataset's version, train file name and train md5."""
    registry, problems = load_datasets(REPO)
    assert problems == []
    entry = registry.get(DATASET)
    return entry.version, entry.splits.train.file, entry.splits.train.md5


def test_the_sagemaker_step_trains_on_the_uploaded_split_and_gets_its_pin() -> None:
    """The shipped dev stack: Mistral's pipeline."""
    version, file, md5 = _pinned_train()
    graph = run_program("dev")
    objects = graph.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
    uploads = [o for o in objects if o.name.startswith(f"llmops-{MISTRAL}")]
    assert [o.inputs["key"] for o in uploads if o.inputs["key"].startswith("datasets/")] == [
        f"datasets/{DATASET}/{version}/{file}"
    ]
    [pipeline] = graph.of_type("aws:sagemaker/pipeline:Pipeline")
    [train] = [s for s in json.loads(pipeline.inputs["pipelineDefinition"])["Steps"] if s["Type"] == "Training"]
    hp = {k: json.loads(v) if v.startswith('"') else v for k, v in train["Arguments"]["HyperParameters"].items()}
    assert hp["dataset_file"] == file and hp["dataset_md5"] == md5, hp
    channel = train["Arguments"]["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    assert channel.endswith(f"/datasets/{DATASET}/{version}/"), channel
    assert pipeline.inputs["pipelineDescription"].endswith(f"on {DATASET}@{version} and register it")


def test_the_eks_job_gets_the_pin(stacks: dict[str, StackSettings], tmp_path: Path) -> None:
    """A fixture model trained by an EKS Job on the same dataset."""
    version, file, md5 = _pinned_train()
    entry = models()["code-eks"]
    entry["training"]["dataset"] = {"name": DATASET, "version": version}
    # The dataset's entry and splits beside the registry (they are read from the stack's root).
    shutil.copytree(REPO / "models" / "datasets", tmp_path / "models" / "datasets")
    shutil.copytree(REPO / "models" / "data" / DATASET, tmp_path / "models" / "data" / DATASET)
    registry = write_registry(tmp_path, {"code-eks": entry}, keep=("datasets", "data"))
    graph = run_platform("dev", stacks["dev"], registry, tmp_path)
    [job] = graph.of_type("kubernetes:batch/v1:Job")
    args = job.inputs["spec"]["template"]["spec"]["containers"][0]["args"]
    pins = dict(zip(args[::2], args[1::2], strict=False))
    assert pins["--dataset_file"] == file and pins["--dataset_md5"] == md5, args


def _finetune() -> ModuleType:
    spec = importlib.util.spec_from_file_location("finetune_dataset_check", REPO / "components/aws/train/finetune.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_training_script_refuses_a_split_that_is_not_the_pinned_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, file, md5 = _pinned_train()
    channel = tmp_path / "train"
    channel.mkdir()
    shipped = (REPO / "models" / "data" / DATASET / file).read_bytes()
    (channel / file).write_bytes(shipped)
    finetune = _finetune()
    hp = {"dataset_file": file, "dataset_md5": md5}
    assert finetune.check_dataset(channel, hp) is None

    (channel / file).write_bytes(shipped.replace(b"Priority: low", b"Priority: urgent", 1))
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(channel))
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.delenv("HF_TOKEN_SECRET", raising=False)
    # As SageMaker passes them: `--key value` pairs; the base model is never loaded.
    argv = ["--base_model", "no-such/model", "--dataset_file", file, "--dataset_md5", md5]
    assert finetune.main(argv) == 1
    err = capsys.readouterr().err
    assert f"not the registry's pinned {md5}" in err and "changed without a new version" in err
    assert not (tmp_path / "model").exists()
    # A missing split is named, with what the channel holds instead.
    (channel / file).rename(channel / "other.txt")
    assert "is not in" in (finetune.check_dataset(channel, hp) or "")


def test_an_md5_that_looks_like_a_number_stays_text() -> None:
    finetune = _finetune()
    assert finetune._hyperparameters(["--dataset_md5", "12e45", "--epochs", "2"]) == {
        "dataset_md5": "12e45",
        "epochs": 2,
    }


def test_lineage_of_the_shipped_fine_tuned_model_names_its_dataset() -> None:
    version, _, md5 = _pinned_train()
    env = {"HOME": os.environ["HOME"], "PATH": "/usr/bin:/bin"}
    shown = subprocess.run(
        [str(REPO / ".venv" / "bin" / "llmops"), "lineage", MISTRAL],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert f"dataset   {DATASET}@{version}" in shown.stdout and f"train {md5}" in shown.stdout, shown.stdout
