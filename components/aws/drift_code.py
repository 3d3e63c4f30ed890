"""The AWS drift job's code archive: the project's `llmops` package, the reference dataset and
the pins of what the drift module imports, as one reproducible tar.gz.

The job runs in the SageMaker SKLearn processing image the sagemaker SDK's tables name (a
maintained Python 3.12 image, pulled from AWS's registry): nothing to build or push. Its
entrypoint unpacks this archive, installs `requirements.txt` (exact versions from
requirements.lock) under the whole lock as constraints, so transitive dependencies are the
tested ones too, and runs `python -m llmops.datasets.drift run` with LLMOPS_ROOT at the archive.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from components.aws.archive import reproducible_targz
from llmops.datasets.registry import DATASETS_DIR, DatasetEntry, SplitName, file_md5

ARCHIVE = "code.tar.gz"
CODE_DIR = "/opt/ml/processing/code"
LOCK = "requirements.lock"
# What `llmops.datasets.drift run --cloudwatch` imports beyond the standard library (the
# registry's YAML and pydantic models, Evidently over pandas, boto3 for CloudWatch).
REQUIREMENTS = ("evidently", "pandas", "pydantic", "PyYAML", "boto3")
SPLITS: tuple[SplitName, ...] = ("train", "eval")  # the reference (eval) and the vocabulary (train)


class DriftCodeError(ValueError):
    """The archive cannot be built as pinned: the message names the file at fault."""


def pinned(lock_text: str, names: tuple[str, ...] = REQUIREMENTS) -> list[str]:
    """`name==version` for each of `names`, as requirements.lock pins it."""
    pins = {}
    for line in lock_text.splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and not name.startswith("#"):
            pins[name.lower().replace("_", "-")] = f"{name}=={version}"
    missing = [n for n in names if n.lower() not in pins]
    if missing:
        raise DriftCodeError(f"{LOCK}: no pin for {', '.join(missing)} (the drift job installs exact versions)")
    return [pins[n.lower()] for n in names]


def drift_archive(root: Path, entry: DatasetEntry) -> tuple[bytes, str]:
    """The archive and its sha256; refused when a shipped split differs from its registry md5."""
    files: list[tuple[str, bytes]] = []
    package = root / "llmops"
    files += [
        (p.relative_to(root).as_posix(), p.read_bytes())
        for p in sorted(package.rglob("*.py"))
        if "__pycache__" not in p.parts
    ]
    display = f"models/{DATASETS_DIR}/{entry.name}.yaml"
    files.append((display, (root / display).read_bytes()))
    for split in SPLITS:
        path = entry.split_path(root, split)
        pin = getattr(entry.splits, split).md5
        if not path.is_file():
            raise DriftCodeError(f"{display}: splits.{split}: {path.relative_to(root)} is missing (dvc pull)")
        if pin and file_md5(path) != pin:
            raise DriftCodeError(
                f"{display}: splits.{split}: {path.relative_to(root)} differs from its pinned md5 "
                "(bump the dataset's version, or `dvc checkout` the pinned content)"
            )
        files.append((path.relative_to(root).as_posix(), path.read_bytes()))
    lock = (root / LOCK).read_text()
    files.append(("requirements.txt", ("\n".join(pinned(lock)) + "\n").encode()))
    files.append(("constraints.txt", lock.encode()))
    return reproducible_targz(files)


def entrypoint(drift_args: list[str]) -> list[str]:
    """Unpack, install the pins, run the drift module. Its exit status 1 means "drift detected",
    which the alarm reports: the job fails only when the monitor itself fails (status > 1)."""
    quoted = " ".join(shlex.quote(a) for a in drift_args)
    return [
        "bash", "-c",
        f"set -euo pipefail; cd {CODE_DIR} && tar xzf {ARCHIVE} && "
        "python3 -m pip install -q --no-cache-dir -r requirements.txt -c constraints.txt && "
        f"{{ python3 -m llmops.datasets.drift run {quoted} || [ $? -eq 1 ]; }}",
    ]  # fmt: skip
