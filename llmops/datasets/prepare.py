"""The DVC stage that turns a dataset's raw source into its splits (`dvc.yaml`, stage `prepare-NAME`).

    python -m llmops.datasets.prepare NAME [--pin]

Deterministic: drops empty records and exact or near duplicates (first kept),
assigns each record to train/eval/held-out by a hash of its normalised words (so a
record keeps its split when others are added), then moves eval/held-out records
that overlap train beyond the entry's contamination limit into train. `--pin`
writes the new md5s into the entry (keeping its comments); bump `version` with it.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from llmops import paths
from llmops.datasets.records import iter_records, render
from llmops.datasets.registry import DatasetEntry, SplitName, file_md5, load_datasets
from llmops.datasets.validate import _ngrams, normalise


def assign(entry: DatasetEntry, texts: list[str]) -> dict[SplitName, list[str]]:
    """Records per split: deduplicated, hash-assigned, decontaminated."""
    kept, keys = [], set()
    for text in texts:
        key = normalise(text)
        if key and key not in keys:
            keys.add(key)
            kept.append((key, text))
    bounds = [
        ("train", entry.splits.train.fraction),
        ("eval", entry.splits.train.fraction + entry.splits.eval.fraction),
        ("held_out", 1.0),
    ]
    out: dict[SplitName, list[str]] = {"train": [], "eval": [], "held_out": []}
    for key, text in kept:
        u = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
        split: SplitName = next(name for name, bound in bounds if u < bound)  # type: ignore[misc]
        out[split].append(text)
    n, limit = entry.quality.contamination_ngram, entry.quality.contamination_max_overlap
    moved = True
    while moved:  # moving records into train adds n-grams to it: repeat until stable
        moved = False
        train_grams: set[int] = set().union(*(_ngrams(t, n) for t in out["train"]))
        for split in ("eval", "held_out"):
            clean = []
            for text in out[split]:
                grams = _ngrams(text, n)
                if grams and len(grams & train_grams) / len(grams) > limit:
                    out["train"].append(text)
                    moved = True
                else:
                    clean.append(text)
            out[split] = clean
    return out


def prepare(root: Path, name: str) -> dict[SplitName, Path]:
    registry, _problems = load_datasets(root)
    if name not in registry.datasets:
        raise SystemExit(f"error: no dataset {name!r} in models/datasets/")
    entry = registry.datasets[name]
    source = root / entry.source.file
    texts = [r.text for r in iter_records(source.read_bytes()) if r.text.strip()]
    splits = assign(entry, texts)
    folder = root / entry.path
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[SplitName, Path] = {}
    for split, spec in entry.splits.items():
        path = folder / spec.file
        path.write_text(render(splits[split]), encoding="utf-8")
        written[split] = path
    return written


def pin(root: Path, name: str, written: dict[SplitName, Path]) -> None:
    """Write the split md5s into models/datasets/NAME.yaml, keeping comments and layout."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    path = root / "models" / "datasets" / f"{name}.yaml"
    doc = yaml.load(path.read_text())
    for split, file in written.items():
        doc["splits"][split]["md5"] = file_md5(file)
    with path.open("w") as fh:
        yaml.dump(doc, fh)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmops.datasets.prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="dataset name (models/datasets/NAME.yaml)")
    parser.add_argument("--pin", action="store_true", help="write the new md5s into the entry")
    args = parser.parse_args(argv)
    root = paths.repo_root()
    written = prepare(root, args.name)
    for split, path in written.items():
        records = sum(1 for r in iter_records(path.read_bytes()))
        print(f"{split}: {path.relative_to(root)} {records} records md5 {file_md5(path)}", file=sys.stderr)
    if args.pin:
        pin(root, args.name, written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
