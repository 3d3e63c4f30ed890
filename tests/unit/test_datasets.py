"""Dataset registry, the DVC stage's split, and `llmops data validate`.

Proves: the shipped dataset (models/datasets/tiny-chat-corpus.yaml) validates clean
and its splits are what `python -m llmops.datasets.prepare` (the DVC stage)
produces from the shipped corpus; one defect of each kind, injected into a copy
of the shipped splits, is reported by its check at its line (schema, duplicate,
near-duplicate, contamination, PII, empty, oversized, encoding) and the changed
content is reported as changed without a new version; registry mistakes are
located; a model's reference to an unknown dataset version is a located registry
problem; `--json` has the documented shape and the exit code is 1.
Cannot prove: PII recall beyond presidio's recognizers (they are pattern based).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from llmops.cli import main
from llmops.datasets.prepare import prepare
from llmops.datasets.registry import file_md5, load_datasets
from llmops.datasets.validate import validate_dataset, validate_files

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
NAME = "tiny-chat-corpus"
SPLITS = "models/data/tiny-chat-corpus"


def _copy(tmp_path: Path) -> Path:
    """A repository root holding a copy of the dataset entry, its source and its splits."""
    for rel in ("models/datasets", SPLITS):
        shutil.copytree(ROOT / rel, tmp_path / rel)
    (tmp_path / "models/data/corpus.txt").write_bytes((ROOT / "models/data/corpus.txt").read_bytes())
    return tmp_path


def test_shipped_dataset_is_valid() -> None:
    reports, problems = validate_files(ROOT)
    assert problems == []
    shipped = {
        path.stem: yaml.safe_load(path.read_text())["version"] for path in (ROOT / "models" / "datasets").glob("*.yaml")
    }
    assert sorted(r.dataset for r in reports) == sorted(f"{name}@{version}" for name, version in shipped.items())
    for report in reports:
        assert report.problems == [], "\n".join(map(str, report.problems))
    by_name = {r.dataset.split("@")[0]: r for r in reports}
    tiny, tickets = by_name[NAME].records, by_name["support-tickets"].records
    assert tiny["train"] > 1000 and tiny["eval"] > 20 and tiny["held_out"] > 20
    assert tickets["train"] > 800 and tickets["eval"] > 100 and tickets["held_out"] > 100


def test_shipped_splits_are_what_the_dvc_stage_writes(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    for split in ("train.txt", "eval.txt", "held-out.txt"):
        (root / SPLITS / split).unlink()
    written = prepare(root, NAME)
    registry, _ = load_datasets(ROOT)
    for split, spec in registry.datasets[NAME].splits.items():
        assert file_md5(written[split]) == spec.md5, split


def _line_of(blocks: list[str], index: int) -> int:
    return sum(b.count("\n") + 2 for b in blocks[:index]) + 1


def _inject_defects(root: Path) -> tuple[list[str], list[str]]:
    """One defect of each kind written into the copy's train and eval splits; their records."""
    train_path, eval_path = root / SPLITS / "train.txt", root / SPLITS / "eval.txt"
    train = train_path.read_text().rstrip("\n").split("\n\n")
    evals = eval_path.read_text().rstrip("\n").split("\n\n")
    original = list(train)

    train[10] = "User: What is the capital of nowhere in particular?"  # schema: no assistant turn
    train[20] = original[5]  # exact duplicate of record 5
    train[30] = original[6].upper().replace(".", " !")  # near duplicate of record 6
    train[40] = "User: Who do I write to?\nAssistant: Write to jane.doe@example.com about it."  # PII
    train[50] = "User: Tell me a long story.\nAssistant: " + "word " * 600  # oversized (> 2048 bytes)
    # contamination: an eval record made of the longest train record's words, reworded at both ends
    longest = max(original, key=len)
    evals[3] = "User: Tell me something.\nAssistant: " + " ".join(longest.split()[2:]) + " indeed"
    text = "\n\n".join(train) + "\n"
    # encoding: a Latin-1 byte inside record 60; empty: an extra blank line where record 70 begins
    raw = text.encode()
    at60, at70 = (sum(len(b.encode()) + 2 for b in train[:i]) for i in (60, 70))
    raw = raw[:at60] + b"caf\xe9 " + raw[at60:at70] + b"\n" + raw[at70:]
    train_path.write_bytes(raw)
    eval_path.write_text("\n\n".join(evals) + "\n")
    return train, evals


def test_each_injected_defect_is_found_at_its_line(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    train, evals = _inject_defects(root)
    registry, _ = load_datasets(root)
    report = validate_dataset(registry, NAME)
    found = {(p.file.rsplit("/", 1)[-1], p.line, p.check) for p in report.problems}
    line = {i: _line_of(train, i) for i in (10, 20, 30, 40, 50, 60)}
    expected = {
        ("train.txt", line[10], "schema"),
        ("train.txt", line[20], "duplicate"),
        ("train.txt", line[30], "near-duplicate"),
        ("train.txt", line[40] + 1, "pii"),  # the e-mail address is on the record's second line
        ("train.txt", line[50], "oversized"),
        ("train.txt", line[60], "encoding"),
        ("train.txt", _line_of(train, 70), "empty"),  # the extra blank line sits where record 70 began
        ("eval.txt", _line_of(evals, 3), "contamination"),
    }
    assert expected <= found, "\n".join(map(str, report.problems))
    # Nothing else is reported but the changed content itself (train and eval no longer match their md5s).
    others = [p for p in report.problems if (p.file.rsplit("/", 1)[-1], p.line, p.check) not in expected]
    assert {p.check for p in others} == {"version"}, "\n".join(map(str, others))
    assert all("changed without a new version" in p.message for p in others)
    assert len(others) == 2


def test_forked_pii_scanners_give_the_same_report(tmp_path: Path) -> None:
    """`llmops data validate` scans PII in worker processes; the report is the in-process one."""
    root = _copy(tmp_path)
    _inject_defects(root)
    registry, _ = load_datasets(root)
    alone, forked = validate_dataset(registry, NAME), validate_dataset(registry, NAME, workers=2)
    assert any(p.check == "pii" for p in alone.problems)
    assert forked.problems == alone.problems


TRICKY = [
    "",
    "plain words only",
    "User: hi\nAssistant: hello there",
    "System: be brief\nUser: q\nmore of q\nAssistant:  \nUser: again\nAssistant: ok",
    "Hello\nUser: a late turn\nAssistant: x",  # plain text whose later lines look like turns
    "Assistant: first\nUser: second",
    "User: \nAssistant: x",
    "User: CAFÉ, café! Ｃａｆé\u0301 ﬁne\x07",  # NFKC, casefolding, punctuation, a control character
    "User: one two three four five six seven eight nine ten\nAssistant: one two three four five six seven",
    "one two three four five six seven eight nine ten eleven",
    "? ! ...",
    "tabs\tand\x1cseparators\x1fhere\n\x0bx",
]


def test_bulk_record_shapes_and_keys_are_the_per_record_ones() -> None:
    """The schema's row, the near-duplicate key and the n-gram sets, computed in bulk for speed,
    equal what each record's own methods give (the definitions the checks are written against)."""
    from llmops.datasets.ngrams import gram_hashes
    from llmops.datasets.records import Record, shape
    from llmops.datasets.validate import _ngrams, near_keys, normalise

    records = [Record(line=1, raw=t.encode(), text=t, decode_error=None) for t in TRICKY]
    for rec in records:
        turns = rec.turns()
        expected = (rec.kind, rec.roles, min((len(c.strip()) for _, c in turns), default=len(rec.text.strip())))
        assert shape(rec.text) == expected, rec.text
    assert near_keys(TRICKY) == [normalise(t) for t in TRICKY]
    assert near_keys(["a\n\nb", "A. b"]) == ["a b", "a b"]  # a blank line inside a text: one by one

    for n in (3, 8):
        sets: dict[int, set[int]] = {}
        for owners, hashes in gram_hashes(TRICKY, n, chunk=5):
            for i, h in zip(owners.tolist(), hashes.tolist(), strict=True):
                sets.setdefault(i, set()).add(h)
        for i, a in enumerate(TRICKY):
            assert len(sets.get(i, set())) == len(_ngrams(a, n)), (n, a)
            for j, b in enumerate(TRICKY):  # shared n-grams between any two texts, exactly as the sets
                assert len(sets.get(i, set()) & sets.get(j, set())) == len(_ngrams(a, n) & _ngrams(b, n)), (a, b)


def test_registry_entry_problems_are_located(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "models/datasets" / f"{NAME}.yaml"
    text = path.read_text().replace("fraction: 0.9", "fraction: 0.8").replace("action: reject", "action: maybe")
    path.write_text(text)
    _, problems = load_datasets(root)
    lines = text.splitlines()
    shown = {(p.line, p.path) for p in problems}
    assert (lines.index("splits:") + 1, "splits") in shown
    assert (next(i for i, row in enumerate(lines) if "action: maybe" in row) + 1, "pii.action") in shown


def test_cli_json_shape_and_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy(tmp_path)
    (root / "Pulumi.yaml").write_text("name: x\n")
    with (root / SPLITS / "eval.txt").open("a") as fh:
        fh.write("\nUser: mail me at someone@example.org\nAssistant: No.\n")
    monkeypatch.setenv("LLMOPS_ROOT", str(root))
    assert main(["data", "validate", NAME, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"problems", "summary"}
    checks = {p["check"] for p in doc["problems"]}
    assert {"pii", "version"} <= checks
    assert all(set(p) == {"file", "line", "check", "message"} for p in doc["problems"])
    assert doc["summary"]["problems"] == len(doc["problems"])
    monkeypatch.setenv("LLMOPS_ROOT", str(ROOT))
    assert main(["data", "validate"]) == 0


def test_model_reference_to_unknown_dataset_version_is_located(tmp_path: Path) -> None:
    from llmops.registry import validate
    from llmops.settings import load_all_stacks

    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models)
    path = models / "tiny-chat.yaml"
    shipped = yaml.safe_load(path.read_text())["training"]["dataset"]["version"]
    text = path.read_text().replace(f'    version: "{shipped}"\n', '    version: "7"\n', 1)
    path.write_text(text)
    _, problems = validate(models, load_all_stacks(ROOT / "stacks"), [path])
    [problem] = [p for p in problems if p.path == "training.dataset.name"]
    assert f"is at version '{shipped}', not '7'" in problem.message
    assert problem.line == text.splitlines().index("    name: tiny-chat-corpus") + 1


def test_dvc_lock_records_the_md5s_the_entry_pins() -> None:
    import yaml

    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    outs = {o["path"]: o["md5"] for o in lock["stages"][f"prepare-{NAME}"]["outs"]}
    registry, _ = load_datasets(ROOT)
    entry = registry.datasets[NAME]
    assert {f"{entry.path}/{spec.file}": spec.md5 for _, spec in entry.splits.items()} == outs
