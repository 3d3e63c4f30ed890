"""`llmops data validate`: every problem of a dataset's splits, located as `FILE:LINE: check: message`.

Checks, each named in the output:
- `encoding`: a record that is not UTF-8, or holds U+FFFD or control characters;
- `empty` and `oversized` records (the entry's `format.max_record_bytes`);
- `schema`: the record schema (pandera; a conversation alternates User/Assistant turns);
- `duplicate` (same bytes) and `near-duplicate` (same words once case, spacing and
  punctuation are normalised), across all splits;
- `contamination`: an eval or held-out record sharing more than
  `quality.contamination_max_overlap` of its word n-grams with the train split;
- `pii`: personal data per the entry's `pii` policy (presidio's pattern recognizers).
"""

from __future__ import annotations

import hashlib
import re
import time
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llmops.datasets import pii
from llmops.datasets.records import Record, read_records
from llmops.datasets.registry import DatasetEntry, DatasetRegistry, SplitName, content_problems

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")
_WORD_RE = re.compile(r"\w+")
_PUNCT_RE = re.compile(r"[^\w\s]+")


@dataclass(frozen=True, order=True)
class DataProblem:
    file: str
    line: int
    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.check}: {self.message}"


@dataclass
class Report:
    dataset: str
    problems: list[DataProblem]
    records: dict[str, int]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "problems": [asdict(p) for p in self.problems],
            "summary": {
                "dataset": self.dataset,
                "records": self.records,
                "problems": len(self.problems),
                "by_check": dict(sorted(Counter(p.check for p in self.problems).items())),
                "seconds": round(self.seconds, 3),
            },
        }


def normalise(text: str) -> str:
    """The near-duplicate key: case, accents' composition, punctuation and spacing do not count."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCT_RE.sub(" ", text).split())


def _ngrams(text: str, n: int) -> set[int]:
    words = _WORD_RE.findall(text.casefold())
    if len(words) < n:
        return {hash(tuple(words))} if words else set()
    return {hash(tuple(words[i : i + n])) for i in range(len(words) - n + 1)}


def _schema_problems(entry: DatasetEntry, records: list[Record], display: str) -> list[DataProblem]:
    """The record schema as a pandera DataFrameModel, validated lazily so every failure is collected."""
    import pandas as pd
    from pandera.errors import SchemaErrors

    from llmops.datasets.schema import SCHEMAS

    rows = [
        (
            r.kind,
            r.roles,
            min((len(c.strip()) for _, c in r.turns()), default=len(r.text.strip())),
        )
        for r in records
    ]
    df = pd.DataFrame(rows, columns=["kind", "roles", "shortest_turn"])
    try:
        SCHEMAS[entry.format.record_schema].validate(df, lazy=True)
    except SchemaErrors as exc:
        out = []
        cases = exc.failure_cases
        for index, column, check in zip(cases["index"], cases["column"], cases["check"], strict=True):
            if index is None or pd.isna(index):
                continue
            rec = records[int(index)]
            what = {
                "kind": f"record kind {rec.kind!r} is not allowed by record_schema {entry.format.record_schema!r}",
                "shortest_turn": "a turn has no content",
            }.get(str(column), f"{check} (turns: {rec.roles or 'none'})")
            out.append(DataProblem(display, rec.line, "schema", what))
        return out
    return []


def validate_dataset(registry: DatasetRegistry, name: str) -> Report:
    """Every problem of dataset `name`: its pinned content, then each check over its splits."""
    started = time.perf_counter()
    entry = registry.datasets[name]
    root = registry.root
    problems: list[DataProblem] = [
        DataProblem(p.file, p.line or 1, "version", f"{p.path}: {p.message}") for p in content_problems(registry, name)
    ]
    splits: dict[SplitName, tuple[str, list[Record]]] = {}
    for split, spec in entry.splits.items():
        path = entry.split_path(root, split)
        if path.is_file():
            splits[split] = (f"{entry.path}/{spec.file}", read_records(path))

    seen: dict[str, tuple[str, int]] = {}
    near: dict[str, tuple[str, int]] = {}
    for display, records in splits.values():
        problems += _record_problems(entry, display, records, seen, near)
        usable = [r for r in records if r.text.strip()]
        problems += _schema_problems(entry, usable, display)
        if entry.pii.action != "allow":
            found = pii.find_in_records((r.text for r in usable), entry.pii.entities, entry.pii.min_score)
            for i, findings in sorted(found.items()):
                rec = usable[i]
                for f in findings:
                    line = rec.line + rec.text.count("\n", 0, f.start)
                    problems.append(
                        DataProblem(
                            display,
                            line,
                            "pii",
                            f"{f.entity} (score {f.score:.2f}) violates pii.action {entry.pii.action!r}",
                        )
                    )
    if "train" in splits:
        for split in ("eval", "held_out"):
            if split in splits:
                problems += _contamination(entry, splits["train"], splits[split])
    return Report(
        dataset=entry.ref,
        problems=sorted(set(problems)),
        records={s: len(r) for s, (_, r) in splits.items()},
        seconds=time.perf_counter() - started,
    )


def _record_problems(
    entry: DatasetEntry,
    display: str,
    records: list[Record],
    seen: dict[str, tuple[str, int]],
    near: dict[str, tuple[str, int]],
) -> list[DataProblem]:
    out: list[DataProblem] = []
    limit = entry.format.max_record_bytes
    for rec in records:
        if rec.decode_error:
            out.append(DataProblem(display, rec.line, "encoding", rec.decode_error))
        elif m := _CONTROL_RE.search(rec.text):
            line = rec.line + rec.text.count("\n", 0, m.start())
            out.append(DataProblem(display, line, "encoding", f"character U+{ord(m.group()):04X} (mis-encoded text?)"))
        if not rec.text.strip():
            out.append(DataProblem(display, rec.line, "empty", "empty record (more than one blank line?)"))
            continue
        if len(rec.raw) > limit:
            out.append(DataProblem(display, rec.line, "oversized", f"{len(rec.raw)} bytes, limit {limit}"))
        key = hashlib.blake2b(rec.raw, digest_size=16).hexdigest()
        if key in seen:
            f, line = seen[key]
            out.append(DataProblem(display, rec.line, "duplicate", f"same record as {f}:{line}"))
            continue
        seen[key] = (display, rec.line)
        if entry.quality.near_duplicates:
            nkey = normalise(rec.text)
            if nkey in near:
                f, line = near[nkey]
                out.append(DataProblem(display, rec.line, "near-duplicate", f"same words as {f}:{line}"))
            else:
                near[nkey] = (display, rec.line)
    return out


def _contamination(
    entry: DatasetEntry, train: tuple[str, list[Record]], other: tuple[str, list[Record]]
) -> list[DataProblem]:
    """Eval-side n-grams first (small), then one pass over train marking the ones it holds."""
    n, limit = entry.quality.contamination_ngram, entry.quality.contamination_max_overlap
    other_display, other_records = other
    grams = {i: _ngrams(r.text, n) for i, r in enumerate(other_records) if r.text.strip()}
    wanted = set().union(*grams.values()) if grams else set()
    where: dict[int, int] = {}  # n-gram -> first train line holding it
    train_display, train_records = train
    for rec in train_records:
        for g in _ngrams(rec.text, n) & wanted:
            where.setdefault(g, rec.line)
    out = []
    for i, gs in grams.items():
        shared = [g for g in gs if g in where]
        if gs and len(shared) / len(gs) > limit:
            first = min(where[g] for g in shared)
            out.append(
                DataProblem(
                    other_display,
                    other_records[i].line,
                    "contamination",
                    f"{len(shared)}/{len(gs)} of its {n}-grams are in the train split (first at "
                    f"{train_display}:{first}; limit {limit:.0%})",
                )
            )
    return out


def validate_files(root: Path, name: str | None = None) -> tuple[list[Report], list[DataProblem]]:
    """Reports per dataset (or only `name`), and the registry's own problems as data problems."""
    from llmops.datasets.registry import load_datasets

    registry, reg_problems = load_datasets(root)
    problems = [DataProblem(p.file, p.line or 1, "registry", f"{p.path}: {p.message}") for p in reg_problems]
    names = sorted(registry.datasets) if name is None else [name]
    reports = []
    for n in names:
        if n not in registry.datasets:
            known = ", ".join(sorted(registry.datasets)) or "none"
            problems.append(
                DataProblem(f"models/datasets/{n}.yaml", 1, "registry", f"no such dataset (known: {known})")
            )
            continue
        reports.append(validate_dataset(registry, n))
    return reports, problems
