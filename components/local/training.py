"""The local training job: a real training run on this machine, as a Pulumi dynamic resource.

`LocalTrainingJob` runs `python -m llmops.local.train` as a child process (a
crash or a kill cannot take the provider down with it), streams its progress
lines to the provider's stderr (the engine shows them in `pulumi up`), and
kills it past `max_runtime`. The artifact goes into the content-addressed store
shared by the checkout's local stacks; its sha256, `file://` URI and metrics are
the outputs.

- Same inputs (config, dataset hash, hyperparameters, trainer version) → no diff.
  A changed one → update, which looks the inputs up in the store's cache first,
  so going back to inputs trained before (or a second stack) reuses the artifact.
- A failed run raises with the tail of its log: `up` fails and the engine keeps
  the previous outputs (the previous artifact is never touched).
- `refresh` reports whether the artifact is still in the store; if it was deleted
  by hand, the next `up` trains again.
- `destroy` removes nothing: artifacts are data (`make clean` deletes the store).
- `training.base_model: "sha256:<digest>"` fine-tunes an adopted artifact of the store (the digest
  is part of the inputs); any other base trains from the config, as before.
- Each run's artifact becomes a package (`training_package.py`): measured, recorded, adoptable.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from components.contracts import TrainingJobArgs, TrainingJobOutputs
from components.local.training_package import build_package
from llmops.datasets.lineage import LINEAGE_FILE, code_commit, record, resolve
from llmops.errors import UserError
from llmops.local.store import STORE_DIR, ArtifactStore, file_sha256
from llmops.local.train import TRAINER_VERSION, TrainingError, inputs_key, parse_hyperparameters
from llmops.registry import ARTIFACT_PREFIX, Dataset

LOG_TAIL_LINES = 30
# What decides the artifact: a change here retrains (unless the store already has those inputs).
IDENTITY = ("configSha256", "datasetSha256", "hyperparameters", "trainerVersion")
INPUTS = (*IDENTITY, "baseSha256", "model", "configPath", "datasetPath", "maxRuntime", "storeDir", "logDir", "workDir")


class TrainingRunError(RuntimeError):
    """The run failed or ran out of time; the message ends with its log tail."""


def _progress(line: str) -> None:
    # The engine shows each stderr line of a provider as an info message of `pulumi up`.
    print(line, file=sys.stderr, flush=True)


def _key(props: dict[str, Any]) -> str:
    config = json.loads(Path(props["configPath"]).read_text())
    return inputs_key(config, props["datasetSha256"], dict(props["hyperparameters"]), props.get("baseSha256"))


def run_trainer(props: dict[str, Any], out: Path, log_path: Path) -> None:
    """Train into `out` in a child process, echoing its lines, within `maxRuntime` seconds."""
    model = props["model"]
    argv = [
        sys.executable, "-m", "llmops.local.train",
        "--config", props["configPath"],
        "--dataset", props["datasetPath"],
        "--sha256", props["datasetSha256"],
        "--hyperparameters", json.dumps(dict(props["hyperparameters"]), sort_keys=True),
        "--out", str(out),
        *(["--base", str(Path(props["storeDir"]) / props["baseSha256"])] if props.get("baseSha256") else []),
        *(["--lineage", json.dumps(_with_commit(props), sort_keys=True)] if props.get("lineageRecord") else []),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
    limit = float(props["maxRuntime"])
    with log_path.open("w") as log:
        # Own session: on timeout the whole process group goes, whatever it started.
        proc = subprocess.Popen(
            argv, cwd=props["workDir"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True,
        )  # fmt: skip
        assert proc.stdout is not None

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                log.write(line + "\n")
                log.flush()
                tail.append(line)
                _progress(f"{model}: {line}")

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        started = time.monotonic()
        try:
            code = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            reader.join(timeout=5)
            raise TrainingRunError(
                f"{model}: training ran past max_runtime ({limit:.0f}s) and was stopped\n{_tail(tail, log_path)}"
            ) from None
        reader.join(timeout=5)
    if code != 0:
        raise TrainingRunError(
            f"{model}: training failed (exit {code}) after {time.monotonic() - started:.0f}s\n{_tail(tail, log_path)}"
        )


def _tail(lines: collections.deque[str], log_path: Path) -> str:
    return f"--- last {len(lines)} lines of {log_path}:\n" + "\n".join(lines)


def train_or_reuse(props: dict[str, Any]) -> dict[str, Any]:
    """The outputs for these inputs: the cached artifact if these inputs were trained before, else a new run."""
    store = ArtifactStore(Path(props["storeDir"]))
    key = _key(props)
    log_path = Path(props["logDir"]) / f"{props['model']}.log"
    sha = store.lookup(key)
    if sha is not None:
        _progress(f"{props['model']}: same inputs as artifact {sha[:12]}; reusing it")
    else:
        with store.workdir(prefix=f"{props['model']}-") as work:
            out = work / "artifact"
            run_trainer(props, out, log_path)
            sha = store.put(out)
        store.remember(key, sha)
        _progress(f"{props['model']}: artifact {sha[:12]} stored in {store.root}")
    metrics = json.loads((store.get(sha) / "metrics.json").read_text())
    # The artifact's own record: a reused artifact keeps the lineage of the run that made it.
    recorded = store.get(sha) / LINEAGE_FILE
    lineage = json.loads(recorded.read_text()) if recorded.is_file() else props.get("lineageRecord")
    return {
        # Pulumi drops inputs whose value is None (baseSha256 for a run from scratch).
        **{k: props[k] for k in INPUTS if k in props},
        "artifactSha256": sha,
        "artifactUri": store.uri(sha),
        "artifactPresent": True,
        "inputsKey": key,
        "metrics": metrics,
        "logPath": str(log_path),
        "lineage": lineage,
    }


class TrainingProvider(ResourceProvider):
    """Stateless: everything it needs is in the resource's inputs (the engine pickles it)."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        try:
            parse_hyperparameters(dict(news.get("hyperparameters") or {}))
        except TrainingError as exc:
            failures.append(CheckFailure("hyperparameters", str(exc)))
        dataset = Path(str(news.get("datasetPath")))
        if not dataset.is_file():
            failures.append(CheckFailure("datasetPath", f"no such file: {dataset}"))
        elif (actual := file_sha256(dataset)) != news.get("datasetSha256"):
            failures.append(
                CheckFailure(
                    "datasetSha256",
                    f"{dataset.name} hashes to {actual}, but the registry pins {news.get('datasetSha256')}",
                )
            )
        if not Path(str(news.get("configPath"))).is_file():
            failures.append(CheckFailure("configPath", f"no such file: {news.get('configPath')}"))
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = train_or_reuse(props)
        return CreateResult(f"{props['model']}-{outs['inputsKey'][:16]}", outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in INPUTS if olds.get(k) != news.get(k)]
        if not olds.get("artifactPresent", True):
            changed.append("artifactPresent")  # deleted from the store: train again
        return DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(train_or_reuse(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        sha = props.get("artifactSha256")
        present = bool(sha) and ArtifactStore(Path(props["storeDir"])).exists(str(sha))
        return ReadResult(id_, {**props, "artifactPresent": present})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        _progress(
            f"{props.get('model')}: artifact {str(props.get('artifactSha256'))[:12]} stays in {props.get('storeDir')} "
            "(artifacts are data; `make clean` removes them)"
        )


class LocalTrainingJob(pulumi.dynamic.Resource, module="local", name="TrainingJob"):
    # Dynamic resources expose their properties under the engine's (camelCase) names.
    artifactSha256: pulumi.Output[str]
    artifactUri: pulumi.Output[str]
    metrics: pulumi.Output[dict[str, Any]]
    lineage: pulumi.Output[dict[str, Any]]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        outputs = ("artifactSha256", "artifactUri", "artifactPresent", "inputsKey", "metrics", "logPath", "lineage")
        super().__init__(TrainingProvider(), name, {**props, **dict.fromkeys(outputs)}, opts)


def _with_commit(props: dict[str, Any]) -> dict[str, Any]:
    """The lineage record with the code commit the artifact is trained at. Filled in when training
    runs, not passed as an input: a new commit alone must neither retrain nor touch the state."""
    return {**props["lineageRecord"], "commit": code_commit(Path(props["workDir"]))}


def build_training(component: TrainingJobOutputs, name: str, args: TrainingJobArgs) -> None:
    training = args.model.training
    assert training is not None
    ctx = args.context
    model = args.model.name
    dataset = training.dataset
    root = ctx.root.resolve()
    if dataset.name is not None:
        dataset_path, dataset_sha, lineage = checked_dataset(root, model, dataset, dict(training.hyperparameters))
    elif dataset.sha256 is None or dataset.uri is None or "://" in dataset.uri:
        raise pulumi.RunError(
            f"models/{model}.yaml: training.dataset: the local target trains from a registry dataset or a file "
            f"in this repository pinned by sha256 (got uri {dataset.uri!r}, sha256 {dataset.sha256!r})"
        )
    else:
        dataset_path, dataset_sha = root / dataset.uri, dataset.sha256
        lineage = record(None, "", dict(training.hyperparameters))
    config_path = ctx.models_dir.resolve() / args.model.source.config
    state_dir = root / ctx.settings.local.state_dir
    base = fine_tune_base(root, model, training.base_model)
    if base is not None:
        lineage = {**lineage, "base": f"{ARTIFACT_PREFIX}{base}"}
    props = {
        "model": model,
        "configPath": str(config_path),
        "configSha256": file_sha256(config_path),
        "datasetPath": str(dataset_path),
        "datasetSha256": dataset_sha,
        "hyperparameters": dict(training.hyperparameters),
        "trainerVersion": TRAINER_VERSION,
        "baseSha256": base,
        "maxRuntime": training.max_runtime,
        "storeDir": str(root / STORE_DIR),
        "logDir": str(state_dir / "training"),
        "workDir": str(root),
        # Recorded in the artifact; not an input of the diff (a new commit alone does not retrain).
        "lineageRecord": lineage,
    }
    depends = [args.cluster] if args.cluster is not None else []
    job = LocalTrainingJob(f"{name}-run", props, pulumi.ResourceOptions(parent=component, depends_on=depends))
    component.artifact_sha256 = job.artifactSha256
    component.artifact_uri = job.artifactUri
    component.metrics = job.metrics
    component.lineage = job.lineage
    # Measured against the model's gates and recorded as a package that `llmops train adopt` can pin.
    component.package = build_package(component, name, args.model, ctx, job.artifactSha256, job.lineage)


def checked_dataset(
    root: Path, model: str, dataset: Dataset, hyperparameters: dict[str, Any]
) -> tuple[Path, str, dict[str, Any]]:
    """The train split of a registry dataset, refused (at preview) when it fails validation or its
    content changed without a new version; the error names the dataset and every problem."""
    from llmops.datasets.registry import load_datasets
    from llmops.datasets.validate import validate_dataset

    try:
        resolved = resolve(root, dataset)
    except UserError as exc:
        raise pulumi.RunError(f"models/{model}.yaml: training.dataset: {exc}") from None
    registry, _ = load_datasets(root)
    report = validate_dataset(registry, resolved.name)
    if not report.ok:
        shown = "\n".join(f"  {p}" for p in report.problems[:20])
        more = f"\n  … and {len(report.problems) - 20} more" if len(report.problems) > 20 else ""
        raise pulumi.RunError(
            f"models/{model}.yaml: training.dataset: dataset {resolved.ref} fails validation "
            f"({len(report.problems)} problem(s); `llmops data validate {resolved.name}`):\n{shown}{more}"
        )
    path = root / resolved.train_file
    return path, file_sha256(path), record(resolved, "", hyperparameters)


def fine_tune_base(root: Path, model: str, base_model: str) -> str | None:
    """The sha256 of the adopted artifact a local run fine-tunes (`base_model: "sha256:<hex>"`), checked to
    be in this machine's store; None for a run from scratch."""
    if not base_model.startswith(ARTIFACT_PREFIX):
        return None
    from llmops.local.packages import PackageMissingError, pinned_folder

    sha = base_model.removeprefix(ARTIFACT_PREFIX)
    try:
        pinned_folder(root, f"models/{model}.yaml: training.base_model", sha)
    except (PackageMissingError, ValueError) as exc:
        raise pulumi.RunError(str(exc)) from None
    return sha
