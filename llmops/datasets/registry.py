"""The dataset registry: one YAML file per dataset under `models/datasets/`, typed like the model registry.

An entry names a dataset version and pins its content: each split's file and its
md5 (the hash DVC records in `dvc.lock` for the same file). A model refers to a
dataset as `name` + `version`; a split whose bytes no longer match the pinned md5
is content that changed without a new version, and training refuses it.

Problems are located like the model registry's: `models/datasets/FILE.yaml:LINE: field: message`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmops.registry.located import Located, parse_text, pydantic_problems
from llmops.registry.problems import Problem
from llmops.registry.schema import NAME_RE

DATASETS_DIR = "datasets"  # under models/
SplitName = Literal["train", "eval", "held_out"]
PiiEntity = Literal[
    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IP_ADDRESS", "IBAN_CODE", "US_SSN", "URL", "CRYPTO"
]  # fmt: skip
_CHUNK = 1 << 20
DEFAULT_ENTITIES: tuple[PiiEntity, ...] = (
    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IP_ADDRESS", "IBAN_CODE", "US_SSN",
)  # fmt: skip


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecordFormat(_Model):
    """How records are stored. `text-documents`: blank-line separated documents; a document whose
    lines start with `User:` / `Assistant:` is a conversation (the local trainer's format)."""

    type: Literal["text-documents"] = "text-documents"
    record_schema: Literal["chat-or-text", "chat"] = Field(
        default="chat-or-text", description="chat: every record is a User/Assistant conversation."
    )
    max_record_bytes: int = Field(default=4096, ge=16, description="A larger record is reported as oversized.")


class Split(_Model):
    file: str = Field(pattern=r"^[A-Za-z0-9._-]+$", description="File name inside the dataset's path.")
    md5: str = Field(pattern=r"^[0-9a-f]{32}$", description="md5 of the file, as DVC records it in dvc.lock.")
    fraction: float = Field(gt=0, lt=1, description="Share of the source documents assigned to this split.")


class Splits(_Model):
    train: Split
    eval: Split
    held_out: Split

    @model_validator(mode="after")
    def _fractions(self) -> Splits:
        total = round(self.train.fraction + self.eval.fraction + self.held_out.fraction, 6)
        if total != 1:
            raise ValueError(f"split fractions sum to {total}, must be 1")
        return self

    def items(self) -> list[tuple[SplitName, Split]]:
        return [("train", self.train), ("eval", self.eval), ("held_out", self.held_out)]


class PiiPolicy(_Model):
    """reject: a record with personal data fails validation. redact: it is reported only if
    unredacted in a split (capture redacts it). allow: not checked."""

    action: Literal["reject", "redact", "allow"] = "reject"
    entities: list[PiiEntity] = Field(default_factory=lambda: list(DEFAULT_ENTITIES))
    min_score: float = Field(
        default=0.4, ge=0, le=1, description="presidio score below which a match is ignored (phones score 0.4)."
    )


class Quality(_Model):
    near_duplicates: bool = Field(default=True, description="Also report records equal after normalising.")
    contamination_ngram: int = Field(default=8, ge=3, le=50, description="Word n-gram size of the overlap check.")
    contamination_max_overlap: float = Field(
        default=0.5, gt=0, le=1, description="An eval/held-out record sharing more of its n-grams with train fails."
    )


class Source(_Model):
    file: str = Field(min_length=1, description="The raw file the DVC stage splits (repository path).")


class DatasetEntry(_Model):
    name: str = Field(pattern=NAME_RE, description="Equals the file stem.")
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,20}$", description="Bump when the content changes.")
    owner: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = Field(min_length=1)
    licence: str = Field(min_length=1)
    source: Source
    path: str = Field(min_length=1, description="Repository folder holding the split files (a DVC stage's output).")
    format: RecordFormat = Field(default_factory=RecordFormat)
    splits: Splits
    pii: PiiPolicy = Field(default_factory=PiiPolicy)
    quality: Quality = Field(default_factory=Quality)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def split_path(self, root: Path, split: SplitName) -> Path:
        spec: Split = getattr(self.splits, split)
        return root / self.path / spec.file


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class DatasetRegistry:
    root: Path  # the repository root
    datasets: dict[str, DatasetEntry] = field(default_factory=dict)
    displays: dict[str, str] = field(default_factory=dict)
    located: dict[str, Located] = field(default_factory=dict)

    def get(self, name: str, version: str | None = None) -> DatasetEntry:
        entry = self.datasets.get(name)
        if entry is None:
            known = ", ".join(sorted(self.datasets)) or "none"
            raise KeyError(f"no dataset {name!r} in models/{DATASETS_DIR}/ (known: {known})")
        if version is not None and entry.version != version:
            raise KeyError(f"dataset {name!r} is at version {entry.version!r}, not {version!r}")
        return entry

    def problem(self, name: str, loc: tuple[int | str, ...], message: str) -> Problem:
        located = self.located.get(name)
        line, shown = located.locate(loc, keep_last=True) if located else (1, ".".join(map(str, loc)))
        return Problem(self.displays.get(name, f"models/{DATASETS_DIR}/{name}.yaml"), line, shown, message)


def load_datasets(root: Path, models_dir: Path | None = None) -> tuple[DatasetRegistry, list[Problem]]:
    """Every dataset entry under `models_dir` (default root/models), with located problems.

    Split paths are relative to `root`, the repository root."""
    registry = DatasetRegistry(root=root)
    problems: list[Problem] = []
    folder = (models_dir or root / "models") / DATASETS_DIR
    for path in sorted(folder.glob("*.yaml")):
        display = f"models/{DATASETS_DIR}/{path.name}"
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(display, 1, "", f"cannot read the file: {exc}"))
            continue
        located, parse_problems = parse_text(text, display)
        problems.extend(parse_problems)
        if located is None:
            continue
        if not isinstance(located.data, dict):
            problems.append(Problem(display, 1, "", "the file must hold a mapping (a dataset entry)"))
            continue
        try:
            entry = DatasetEntry.model_validate(located.data)
        except ValidationError as exc:
            problems.extend(pydantic_problems(exc, located, display))
            continue
        registry.datasets[entry.name] = entry
        registry.displays[entry.name] = display
        registry.located[entry.name] = located
        if entry.name != path.stem:
            problems.append(registry.problem(entry.name, ("name",), f"name {entry.name!r} differs from the file name"))
    return registry, sorted(problems)


def content_problems(registry: DatasetRegistry, name: str) -> list[Problem]:
    """The split files exist and hash to the md5 the entry pins for its version."""
    entry = registry.datasets[name]
    problems = []
    for split, spec in entry.splits.items():
        path = entry.split_path(registry.root, split)
        if not path.is_file():
            problems.append(
                registry.problem(name, ("splits", split, "file"), f"no such file: {entry.path}/{spec.file}")
            )
            continue
        actual = file_md5(path)
        if actual != spec.md5:
            problems.append(
                registry.problem(
                    name,
                    ("splits", split, "md5"),
                    f"{entry.path}/{spec.file} hashes to {actual}: its content changed without a new version "
                    f"of {entry.ref} (bump `version` and pin the new md5)",
                )
            )
    return problems
