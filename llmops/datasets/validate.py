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

import contextlib
import functools
import multiprocessing
import os
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llmops.datasets import pii
from llmops.datasets.records import Record, read_records, shape
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


# ASCII: NFKC changes nothing and casefold is lower(); punctuation becomes a space by str.translate.
_ASCII_PUNCT = {c: " " for c in range(128) if not re.fullmatch(r"[\w\s]", chr(c))}


def near_keys(texts: Sequence[str]) -> list[str]:
    """`normalise` of each text; the ASCII ones in one pass over their join (~2x faster)."""
    keys = [normalise(t) if not t.isascii() else "" for t in texts]
    ascii_at = [i for i, t in enumerate(texts) if t.isascii()]
    # Joined on blank lines, which no record holds; if a text does, each is done on its own.
    pieces = "\n\n".join(texts[i] for i in ascii_at).lower().translate(_ASCII_PUNCT).split("\n\n")
    if len(pieces) != len(ascii_at):
        return [normalise(t) for t in texts]
    for i, piece in zip(ascii_at, pieces, strict=True):
        keys[i] = " ".join(piece.split())
    return keys


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

    df = pd.DataFrame([shape(r.text) for r in records], columns=["kind", "roles", "shortest_turn"])
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


def validate_dataset(registry: DatasetRegistry, name: str, workers: int = 0) -> Report:
    """Every problem of dataset `name`: its pinned content, then each check over its splits.

    With `workers` > 0 the PII scan (the largest part of a large dataset's time) runs in that many
    forked processes while this one runs the other checks; the report is the same. Only a process
    that may fork (a command line, not a Pulumi provider's gRPC server) should ask for workers.
    """
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
    usable = {split: [r for r in records if r.text.strip()] for split, (_, records) in splits.items()}

    with contextlib.ExitStack() as stack:
        pending: dict[SplitName, Callable[[], dict[int, list[pii.Finding]]]] = {}
        if entry.pii.action != "allow":
            pool = _pool(stack, workers, entry.pii.entities)
            for split, records in usable.items():
                texts = [r.text for r in records]
                if pool is None:  # scanned when its result is asked for
                    pending[split] = functools.partial(
                        pii.find_in_records, texts, entry.pii.entities, entry.pii.min_score
                    )
                else:
                    pending[split] = pii.submit_records(pool, texts, entry.pii.entities, entry.pii.min_score)

        seen: dict[bytes, tuple[str, int]] = {}
        near: dict[str, tuple[str, int]] = {}
        for split, (display, records) in splits.items():
            problems += _record_problems(entry, display, records, seen, near)
            problems += _schema_problems(entry, usable[split], display)
        others = [splits[s] for s in ("eval", "held_out") if s in splits]
        if "train" in splits and others:
            problems += _contamination(entry, splits["train"], others)

        for split, result in pending.items():
            display = splits[split][0]
            for i, findings in sorted(result().items()):
                rec = usable[split][i]
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
    return Report(
        dataset=entry.ref,
        problems=sorted(set(problems)),
        records={s: len(r) for s, (_, r) in splits.items()},
        seconds=time.perf_counter() - started,
    )


def _pool(stack: contextlib.ExitStack, workers: int, entities: Sequence[str]) -> Executor | None:
    """A pool of forked PII scanners (None for none), each inheriting the loaded recognizers."""
    if workers <= 0:
        return None
    pii.find("", entities)  # load the recognizers here, before the fork, rather than once per worker
    context = multiprocessing.get_context("fork")
    return stack.enter_context(ProcessPoolExecutor(max_workers=workers, mp_context=context))


def _record_problems(
    entry: DatasetEntry,
    display: str,
    records: list[Record],
    seen: dict[bytes, tuple[str, int]],
    near: dict[str, tuple[str, int]],
) -> list[DataProblem]:
    out: list[DataProblem] = []
    limit = entry.format.max_record_bytes
    keys = near_keys([r.text for r in records]) if entry.quality.near_duplicates else []
    for i, rec in enumerate(records):
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
        if rec.raw in seen:  # the bytes themselves are the key: no digest to compute, no collision
            f, line = seen[rec.raw]
            out.append(DataProblem(display, rec.line, "duplicate", f"same record as {f}:{line}"))
            continue
        seen[rec.raw] = (display, rec.line)
        if entry.quality.near_duplicates:
            nkey = keys[i]
            if nkey in near:
                f, line = near[nkey]
                out.append(DataProblem(display, rec.line, "near-duplicate", f"same words as {f}:{line}"))
            else:
                near[nkey] = (display, rec.line)
    return out


def _contamination(
    entry: DatasetEntry, train: tuple[str, list[Record]], others: list[tuple[str, list[Record]]]
) -> list[DataProblem]:
    """Eval-side n-grams first (small), then one pass over train marking the ones it holds.
    Each side's n-grams are hashed in bulk (llmops.datasets.ngrams): sets become sorted arrays."""
    import numpy as np

    from llmops.datasets.ngrams import gram_hashes

    n, limit = entry.quality.contamination_ngram, entry.quality.contamination_max_overlap
    sides = []  # per other split: its usable records' indexes, and one (record, gram) pair per distinct gram
    for _display, records in others:
        usable = [i for i, r in enumerate(records) if r.text.strip()]
        pairs = list(gram_hashes([records[i].text for i in usable], n))
        owner = np.concatenate([o for o, _ in pairs]) if pairs else np.zeros(0, np.int64)
        grams = np.concatenate([g for _, g in pairs]) if pairs else np.zeros(0, np.uint64)
        order = np.lexsort((grams, owner))
        owner, grams = owner[order], grams[order]
        keep = np.ones(len(grams), dtype=bool)
        keep[1:] = (owner[1:] != owner[:-1]) | (grams[1:] != grams[:-1])
        sides.append((usable, owner[keep], grams[keep]))
    wanted = np.unique(np.concatenate([g for _, _, g in sides]))
    if not len(wanted):
        return []

    # Membership of train's n-grams in `wanted`: a bitmap of their low bits rules out most at once,
    # a binary search decides the rest.
    bits = np.uint64((1 << 24) - 1)
    maybe = np.zeros(1 << 24, dtype=bool)
    maybe[wanted & bits] = True
    never = np.iinfo(np.int64).max
    first_line = np.full(len(wanted), never, dtype=np.int64)  # per wanted n-gram: first train line holding it
    train_display, train_records = train
    train_lines = np.fromiter((r.line for r in train_records), dtype=np.int64, count=len(train_records))
    for t_owner, t_grams in gram_hashes([r.text for r in train_records], n):
        candidate = maybe[t_grams & bits]
        t_owner, t_grams = t_owner[candidate], t_grams[candidate]
        at = np.searchsorted(wanted, t_grams).clip(max=len(wanted) - 1)
        hit = wanted[at] == t_grams
        np.minimum.at(first_line, at[hit], train_lines[t_owner[hit]])

    out = []
    for (display, records), (usable, owner, grams) in zip(others, sides, strict=True):
        line_of = first_line[np.searchsorted(wanted, grams)]
        shared = line_of != never
        total = np.bincount(owner, minlength=len(usable))
        common = np.bincount(owner, weights=shared, minlength=len(usable)).astype(np.int64)
        first = np.full(len(usable), never, dtype=np.int64)
        np.minimum.at(first, owner[shared], line_of[shared])
        for k in np.flatnonzero(common).tolist():
            if not common[k] / total[k] > limit:
                continue
            out.append(
                DataProblem(
                    display,
                    records[usable[k]].line,
                    "contamination",
                    f"{common[k]}/{total[k]} of its {n}-grams are in the train split (first at "
                    f"{train_display}:{first[k]}; limit {limit:.0%})",
                )
            )
    return out


def validate_files(
    root: Path, name: str | None = None, workers: int | None = None
) -> tuple[list[Report], list[DataProblem]]:
    """Reports per dataset (or only `name`), and the registry's own problems as data problems;
    `workers` PII scanner processes beside this one (default: one per core but this one's)."""
    from llmops.datasets.registry import load_datasets

    registry, reg_problems = load_datasets(root)
    problems = [DataProblem(p.file, p.line or 1, "registry", f"{p.path}: {p.message}") for p in reg_problems]
    names = sorted(registry.datasets) if name is None else [name]
    workers = (os.cpu_count() or 1) - 1 if workers is None else workers
    reports = []
    for n in names:
        if n not in registry.datasets:
            known = ", ".join(sorted(registry.datasets)) or "none"
            problems.append(
                DataProblem(f"models/datasets/{n}.yaml", 1, "registry", f"no such dataset (known: {known})")
            )
            continue
        reports.append(validate_dataset(registry, n, workers))
    return reports, problems
