"""The local GPU pool and training job through the real Pulumi engine, on a throwaway stack.

Proves, in order on one stack: `up` trains the registry's model in a managed
process, streams `step N/M loss X` into the `up` output and exports the
artifact's sha256, which names a folder of the content-addressed store; the
next preview shows no changes; a changed hyperparameter retrains (new sha) and
going back to trained inputs reuses the stored artifact without training; a
run that fails makes `up` fail with the log tail while the previous artifact
stays the stack's output; an artifact deleted by hand is noticed by `refresh`
and retrained by the next `up`; a model that needs a GPU this machine lacks
(and allows no CPU fallback) fails at preview with the need and the capacity;
`destroy` leaves the stored artifacts in place.
Cannot prove: serving the artifact (the endpoint tests do), or a real GPU.
To stay fast and independent of the serving processes, the copy's program is
cut down to the GpuCluster and the TrainingJobs, built exactly as the Platform
builds them; step counts are a handful.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.project import Project, copy_project

pytestmark = [pytest.mark.engine, pytest.mark.timeout(900)]

STACK = "training"
QUICK = {"steps": 6, "batch_size": 4, "seq_len": 32, "learning_rate": 0.01, "seed": 0, "log_every": 2}

PROGRAM = '''\
"""The training part of the platform: the GPU pool and each deployed model's training job."""

import json
from pathlib import Path

import pulumi
from pulumi.runtime.config import get_config_env

from components.context import StackContext
from components.gpu_cluster import GpuCluster, GpuClusterArgs
from components.training_job import TrainingJob, TrainingJobArgs
from llmops.registry import load_registry
from llmops.settings import StackSettings, load_all_stacks
from llmops.sizing import size_deployment


def _decode(value):
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


root = Path(__file__).resolve().parent
settings = StackSettings.from_config({k: _decode(v) for k, v in get_config_env().items()})
registry = load_registry(root / "models", load_all_stacks(root / "stacks"))
ctx = StackContext(pulumi.get_stack(), settings, root)
deployments = registry.deployed_to(settings.environment)
demands = {}
for dep in deployments:
    sizing = size_deployment(dep, ctx.models_dir, "local")
    demands[dep.name] = {
        "gpus": sizing.tensor_parallel,
        "gpu_memory_gib": sizing.total_gib,
        "cpu_fallback": dep.model.serving.cpu_fallback,
    }
cluster = GpuCluster("llmops-cluster", GpuClusterArgs(context=ctx, demands=demands))
for dep in deployments:
    if dep.model.training is not None:
        job = TrainingJob(
            f"llmops-{dep.name}-training", TrainingJobArgs(context=ctx, model=dep.model, cluster=cluster)
        )
        pulumi.export(f"{dep.name}Sha256", job.artifact_sha256)
        pulumi.export(f"{dep.name}Uri", job.artifact_uri)
        pulumi.export(f"{dep.name}Metrics", job.metrics)
pulumi.export("inventory", cluster.inventory)
'''


def _hyperparameters(**values: Any) -> Any:
    def edit(entry: dict[str, Any]) -> None:
        entry["training"]["hyperparameters"] = {**QUICK, **values}

    return edit


def outputs(project: Project) -> dict[str, Any]:
    return dict(json.loads(project.pulumi("stack", "output", "--json", "--show-secrets", stack=STACK).stdout))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    project = copy_project(tmp_path_factory.mktemp("local-training"))
    (project.root / "__main__.py").write_text(PROGRAM)
    project.edit_model("tiny-chat", _hyperparameters())
    project.local_stack(STACK)
    try:
        yield project
    finally:
        project.pulumi("destroy", "--yes", "--skip-preview", stack=STACK, check=False)


@pytest.fixture(scope="module")
def first(project: Project) -> dict[str, Any]:
    result = project.pulumi("up", "--yes", "--skip-preview", stack=STACK)
    return {"output": result.stdout + result.stderr, "outputs": outputs(project)}


def store(project: Project) -> Path:
    return project.root / ".state" / "artifacts"


def test_up_trains_and_streams_progress(project: Project, first: dict[str, Any]) -> None:
    out = first["outputs"]
    sha = out["tiny-chatSha256"]
    assert out["tiny-chatUri"] == (store(project) / sha).resolve().as_uri()
    assert (store(project) / sha / "model.safetensors").is_file()
    assert out["tiny-chatMetrics"]["steps"] == 6
    assert json.loads((store(project) / sha / "metrics.json").read_text()) == out["tiny-chatMetrics"]
    for step in (2, 4, 6):
        assert f"tiny-chat: step {step}/6 loss" in first["output"]
    assert out["inventory"]["cpus"] >= 1


def test_same_inputs_preview_no_changes(project: Project, first: dict[str, Any]) -> None:
    project.pulumi("preview", "--expect-no-changes", stack=STACK)


def test_changed_hyperparameter_retrains_and_old_inputs_reuse(project: Project, first: dict[str, Any]) -> None:
    sha1 = first["outputs"]["tiny-chatSha256"]
    project.edit_model("tiny-chat", _hyperparameters(steps=8))
    result = project.pulumi("up", "--yes", "--skip-preview", stack=STACK)
    sha2 = outputs(project)["tiny-chatSha256"]
    assert sha2 != sha1 and "tiny-chat: step 8/8 loss" in result.stdout
    assert outputs(project)["tiny-chatMetrics"]["steps"] == 8

    project.edit_model("tiny-chat", _hyperparameters())
    result = project.pulumi("up", "--yes", "--skip-preview", stack=STACK)
    assert outputs(project)["tiny-chatSha256"] == sha1
    assert "reusing it" in result.stdout and "step 2/6" not in result.stdout


def test_failed_run_fails_up_and_keeps_previous_artifact(project: Project, first: dict[str, Any]) -> None:
    before = outputs(project)["tiny-chatSha256"]
    project.edit_model("tiny-chat", _hyperparameters(learning_rate=1e6))
    result = project.pulumi("up", "--yes", "--skip-preview", stack=STACK, check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert "tiny-chat: training failed (exit 1)" in text
    assert "--- last" in text and "training diverged" in text
    assert outputs(project)["tiny-chatSha256"] == before
    assert (store(project) / before).is_dir()
    project.edit_model("tiny-chat", _hyperparameters())
    project.pulumi("preview", "--expect-no-changes", stack=STACK)


def test_refresh_notices_a_deleted_artifact_and_up_retrains(project: Project, first: dict[str, Any]) -> None:
    sha = outputs(project)["tiny-chatSha256"]
    shutil.rmtree(store(project) / sha)
    project.pulumi("refresh", "--yes", "--skip-preview", stack=STACK)
    preview = project.pulumi("preview", "--expect-no-changes", stack=STACK, check=False)
    assert preview.returncode != 0, "a deleted artifact must show as a change"
    result = project.pulumi("up", "--yes", "--skip-preview", stack=STACK)
    assert "tiny-chat: step 6/6 loss" in result.stdout
    assert (store(project) / outputs(project)["tiny-chatSha256"]).is_dir()


def test_model_needing_a_gpu_fails_at_preview(project: Project, first: dict[str, Any]) -> None:
    def deploy_locally(entry: dict[str, Any]) -> None:
        entry["deployments"]["local"] = None
        entry["serving"]["cpu_fallback"] = False

    original = (project.root / "models" / "llama-3-1-70b-instruct.yaml").read_text()
    project.edit_model("llama-3-1-70b-instruct", deploy_locally)
    try:
        result = project.pulumi("preview", stack=STACK, check=False)
    finally:
        (project.root / "models" / "llama-3-1-70b-instruct.yaml").write_text(original)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert "llama-3-1-70b-instruct needs 1 GPU with" in text
    assert "this machine has" in text and "the model does not allow CPU fallback" in text


def test_destroy_keeps_artifacts(project: Project, first: dict[str, Any]) -> None:
    sha = outputs(project)["tiny-chatSha256"]
    result = project.pulumi("destroy", "--yes", "--skip-preview", stack=STACK)
    assert "make clean" in result.stdout
    assert (store(project) / sha / "model.safetensors").is_file()
