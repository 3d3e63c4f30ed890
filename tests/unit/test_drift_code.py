"""The AWS drift job's code archive (components/aws/drift_code.py), built and run here.

Proves: the archive is byte-for-byte reproducible; a split whose content differs from its
registry md5 is refused with the dataset file and split named; unpacked on its own, the
archive's `llmops` runs `llmops.datasets.drift run` as the job's entrypoint does (LLMOPS_ROOT
at the archive) over SageMaker-format capture files, and every third-party distribution
that run imports is one the archive's requirements.txt installs (directly or as a
dependency), at the lock's version.
Cannot prove: that the SageMaker image's pip reaches PyPI, or the job's S3 download.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from components.aws.drift_code import LOCK, REQUIREMENTS, DriftCodeError, drift_archive, pinned
from llmops.datasets.capture import capture_record, read_capture
from llmops.datasets.drift import reference_pairs
from llmops.datasets.registry import load_datasets

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DATASET = "tiny-chat-corpus"

# Runs the module as if only the given distributions were installed: an import resolving to a
# file of any other installed distribution fails as it would in the job's image (optional
# imports fall back; a needed one fails the run).
PROBE = """
import json, os, runpy, sys
from importlib.machinery import PathFinder
from importlib.metadata import distributions

allowed = set(json.loads(sys.argv[1]))
owner = {}
for dist in distributions():
    name = dist.metadata["Name"].lower().replace("_", "-")
    for f in dist.files or []:
        owner[os.path.abspath(str(dist.locate_file(f)))] = name


class OnlyAllowed:
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        spec = PathFinder.find_spec(fullname, path, target)
        dist = owner.get(os.path.abspath(spec.origin)) if spec is not None and spec.has_location else None
        if dist is not None and dist not in allowed:
            raise ModuleNotFoundError(f"{fullname}: {dist} is not installed", name=fullname)
        return spec


sys.meta_path.insert(0, OnlyAllowed)
sys.argv = ["drift", *sys.argv[2:]]
try:
    runpy.run_module("llmops.datasets.drift", run_name="__main__")
except SystemExit as exc:
    code = exc.code
import llmops
print(json.dumps({"code": code, "llmops": llmops.__file__}))
"""


def _entry():  # type: ignore[no-untyped-def]
    registry, _ = load_datasets(ROOT)
    return registry.get(DATASET)


def test_archive_is_reproducible() -> None:
    first, second = drift_archive(ROOT, _entry()), drift_archive(ROOT, _entry())
    assert first == second and len(first[1]) == 64


def test_a_split_off_its_pin_is_refused(tmp_path: Path) -> None:
    entry = _entry()
    for rel in ("models/datasets/tiny-chat-corpus.yaml", LOCK):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    shutil.copytree(ROOT / "llmops", tmp_path / "llmops")
    shutil.copytree(ROOT / entry.path, tmp_path / entry.path)
    drift_archive(tmp_path, entry)  # as pinned: builds
    with (tmp_path / entry.path / "eval.txt").open("a") as fh:
        fh.write("U: an extra turn\n")
    with pytest.raises(DriftCodeError, match=r"models/datasets/tiny-chat-corpus.yaml: splits.eval: .*pinned md5"):
        drift_archive(tmp_path, entry)


def test_a_requirement_missing_from_the_lock_is_named() -> None:
    with pytest.raises(DriftCodeError, match=r"requirements\.lock: no pin for evidently"):
        pinned("pandas==2.3.3\n", ("pandas", "evidently"))


def _closure(names: list[str]) -> set[str]:
    """The distributions `names` install: themselves and their non-extra dependencies, recursively."""
    seen: set[str] = set()
    todo = [n.lower().replace("_", "-") for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            deps = requires(name) or []
        except PackageNotFoundError:
            continue
        for dep in map(Requirement, deps):
            if dep.marker is None or dep.marker.evaluate({"extra": ""}):
                todo.append(dep.name.lower().replace("_", "-"))
    return seen


def test_unpacked_archive_runs_the_drift_module_with_only_its_requirements(tmp_path: Path) -> None:
    raw, _ = drift_archive(ROOT, _entry())
    code = tmp_path / "code"
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        tar.extractall(code, filter="data")
    pairs, _ = reference_pairs(_entry(), ROOT)
    rng = random.Random(0)
    folder = tmp_path / "capture" / "chat" / "v1" / "2026" / "11" / "30" / "23"
    folder.mkdir(parents=True)
    with (folder / "part.jsonl").open("w") as fh:
        for prompt, answer in (rng.choice(pairs) for _ in range(60)):
            request = {"messages": [{"role": "user", "content": prompt}]}
            response = {"choices": [{"message": {"role": "assistant", "content": answer}}]}
            fh.write(json.dumps(capture_record(request, response)) + "\n")
    assert len(list(read_capture(tmp_path / "capture", "chat"))) == 60

    requirements = (code / "requirements.txt").read_text().split()
    assert [r.split("==")[0] for r in requirements] == list(REQUIREMENTS)
    allowed = sorted(_closure(list(REQUIREMENTS)) | {"pip", "setuptools"})  # pip, setuptools: in every image
    args = ["run", "--model", "chat", "--dataset", DATASET, "--capture", str(tmp_path / "capture")]
    env = {**os.environ, "LLMOPS_ROOT": str(code), "PYTHONPATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(allowed), *args],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    *report, probe = out.stdout.strip().splitlines()
    result, seen = json.loads("\n".join(report)), json.loads(probe)
    assert seen["llmops"].startswith(str(code))  # the archive's code, not this checkout's
    assert result["records"] == 60 and result["reference_records"] > 0 and set(result["descriptors"])
    assert seen["code"] == 0  # in-distribution traffic: no drift
