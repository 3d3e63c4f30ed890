"""The local trainer, the content-addressed artifact store and the training job's provider logic.

Proves: a few-step run on the shipped corpus and config writes an artifact that
transformers loads back (model, fast tokenizer with chat template and eos/pad)
and whose loss beat the untrained baseline; bad inputs (dataset hash, unknown or
diverging hyperparameters, a window longer than the model) fail with a clear
reason; the committed corpus is what its generator produces and what the
registry pins; the store names artifacts by content, moves them in atomically,
never keeps partial folders and caches artifacts by training inputs; the
provider diffs on inputs only, reuses cached artifacts without training, and
turns a failed or overlong run into an error carrying the log tail.
Cannot prove: model quality at the shipped step count (the benchmark reports
it), or what `pulumi up` shows (tests/engine/test_local_training.py does).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.local import training as provider_mod
from llmops.local.store import ArtifactMissingError, ArtifactStore, file_sha256, tree_sha256
from llmops.local.train import (
    TRAINER_VERSION,
    Hyperparameters,
    TrainingError,
    documents,
    inputs_key,
    main,
    parse_hyperparameters,
    train,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "models" / "configs" / "tiny-chat.json"
CORPUS = ROOT / "models" / "data" / "corpus.txt"
CORPUS_SHA = file_sha256(CORPUS)
QUICK = {"steps": 8, "batch_size": 4, "seq_len": 32, "learning_rate": 0.01, "log_every": 2}


# --------------------------------------------------------------------------- trainer


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], list[str]]:
    out = tmp_path_factory.mktemp("train") / "artifact"
    lines: list[str] = []
    metrics = train(CONFIG, CORPUS, CORPUS_SHA, QUICK, out, log=lines.append)
    return out, metrics, lines


def test_artifact_loads_with_transformers(artifact: tuple[Path, dict[str, Any], list[str]]) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

    out, _, _ = artifact
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|end|>", "<|pad|>")
    assert model.config.eos_token_id == tokenizer.eos_token_id and model.config.pad_token_id == tokenizer.pad_token_id
    assert model.config.vocab_size == len(tokenizer) == json.loads(CONFIG.read_text())["vocab_size"]
    assert (out / "model.safetensors").is_file()

    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 plus 3?"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt == "<|user|>What is 2 plus 3?<|end|>\n<|assistant|>"
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        generated = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] > ids["input_ids"].shape[1]


def test_metrics_and_inputs_are_recorded(artifact: tuple[Path, dict[str, Any], list[str]]) -> None:
    out, metrics, lines = artifact
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["steps"] == 8
    for key in ("final_loss", "eval_loss", "seconds", "tokens_per_second"):
        assert math.isfinite(metrics[key]) and metrics[key] > 0
    # Learned something: below the loss of guessing uniformly over the vocabulary.
    assert metrics["eval_loss"] < math.log(1024)
    recorded = json.loads((out / "training.json").read_text())
    assert recorded["dataset_sha256"] == CORPUS_SHA
    assert recorded["hyperparameters"]["steps"] == 8 and recorded["hyperparameters"]["weight_decay"] == 0.1
    assert recorded["inputs_key"] == inputs_key(json.loads(CONFIG.read_text()), CORPUS_SHA, QUICK)
    assert [line.split(" loss")[0] for line in lines if line.startswith("step ")] == [
        "step 2/8", "step 4/8", "step 6/8", "step 8/8",
    ]  # fmt: skip


def test_dataset_hash_mismatch_fails_before_writing(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=f"corpus.txt hashes to {CORPUS_SHA}, expected 0{{64}}"):
        train(CONFIG, CORPUS, "0" * 64, QUICK, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_window_longer_than_the_model_fails(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="seq_len 512 exceeds the config's max_position_embeddings 256"):
        train(CONFIG, CORPUS, CORPUS_SHA, {**QUICK, "seq_len": 512}, tmp_path / "out")


def test_diverging_run_fails(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="training diverged"):
        train(CONFIG, CORPUS, CORPUS_SHA, {**QUICK, "learning_rate": 1e6}, tmp_path / "out", log=lambda _: None)
    assert not (tmp_path / "out").exists()


def test_hyperparameters_are_validated() -> None:
    with pytest.raises(TrainingError, match="invalid hyperparameters: stesp: Extra inputs are not permitted"):
        parse_hyperparameters({"stesp": 10})
    with pytest.raises(TrainingError, match="learning_rate"):
        parse_hyperparameters({"learning_rate": 0})
    with pytest.raises(TrainingError, match="warmup_steps"):
        parse_hyperparameters({"steps": 10, "warmup_steps": 10})
    assert Hyperparameters(steps=300).warmup == 30


def test_inputs_key() -> None:
    config = json.loads(CONFIG.read_text())
    base = inputs_key(config, CORPUS_SHA, {"steps": 300})
    # Defaults written out, or a float the state hands back for an int, are the same inputs.
    assert base == inputs_key(config, CORPUS_SHA, Hyperparameters(steps=300).model_dump())
    assert base == inputs_key(config, CORPUS_SHA, {"steps": 300.0})
    assert base != inputs_key(config, CORPUS_SHA, {"steps": 301})
    assert base != inputs_key(config, "1" * 64, {"steps": 300})
    assert base != inputs_key({**config, "hidden_size": 64}, CORPUS_SHA, {"steps": 300})


def test_documents() -> None:
    text = "User: Hi\nAssistant: Hello\nthere.\n\nPlain text\nspanning lines.\n\n\nUser: Only a question"
    assert documents(text) == [
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello\nthere."}],
        "Plain text\nspanning lines.",
        [{"role": "user", "content": "Only a question"}],
    ]


def test_cli_reports_a_bad_hash(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["--config", str(CONFIG), "--dataset", str(CORPUS), "--sha256", "ab", "--out", str(tmp_path / "o")])
    assert code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: dataset sha256 mismatch")


def test_committed_corpus_is_reproducible_and_pinned() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_corpus", ROOT / "models" / "data" / "make_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.corpus().encode() == CORPUS.read_bytes()
    # dvc.lock records the corpus the `corpus` stage produces; the model trains on its prepared splits.
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    outs = {o["path"]: o["md5"] for o in lock["stages"]["corpus"]["outs"]}
    assert outs["models/data/corpus.txt"] == hashlib.md5(CORPUS.read_bytes(), usedforsecurity=False).hexdigest()
    entry = yaml.safe_load((ROOT / "models" / "tiny-chat.yaml").read_text())
    dataset = yaml.safe_load((ROOT / "models" / "datasets" / "tiny-chat-corpus.yaml").read_text())
    assert entry["training"]["dataset"] == {"name": "tiny-chat-corpus", "version": dataset["version"]}
    assert 10_000 < CORPUS.stat().st_size < 300_000


# --------------------------------------------------------------------------- store


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_tree_hash_covers_paths_and_bytes(tmp_path: Path) -> None:
    a = tree_sha256(_tree(tmp_path / "a", {"x/model.bin": b"123", "config.json": b"{}"}))
    assert a == tree_sha256(_tree(tmp_path / "b", {"config.json": b"{}", "x/model.bin": b"123"}))
    assert a != tree_sha256(_tree(tmp_path / "c", {"x/model.bin": b"124", "config.json": b"{}"}))
    assert a != tree_sha256(_tree(tmp_path / "d", {"y/model.bin": b"123", "config.json": b"{}"}))
    # Path/content boundaries are part of the hash: no collision by concatenation.
    assert tree_sha256(_tree(tmp_path / "e", {"a": b"bc"})) != tree_sha256(_tree(tmp_path / "f", {"ab": b"c"}))


def test_put_moves_in_atomically_and_freezes(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    with store.workdir() as work:
        src = _tree(work / "artifact", {"model.safetensors": b"w" * 1000, "metrics.json": b"{}"})
        expected = tree_sha256(src)
        sha = store.put(src)
        assert not src.exists()
    assert sha == expected and store.exists(sha) and store.verify(sha)
    assert store.uri(sha) == (tmp_path / "store" / sha).resolve().as_uri()
    # Read-only files (mode bits: root ignores them, so the bits themselves are checked).
    assert all(f.stat().st_mode & 0o222 == 0 for f in store.get(sha).iterdir())
    # Nothing but the artifact and the (empty) work area remain.
    assert sorted(p.name for p in store.root.iterdir()) == [".tmp", sha]
    assert list((store.root / ".tmp").iterdir()) == []

    again = _tree(tmp_path / "again", {"model.safetensors": b"w" * 1000, "metrics.json": b"{}"})
    assert store.put(again) == sha and not again.exists()


def test_workdir_is_removed_when_a_run_fails(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    with pytest.raises(RuntimeError), store.workdir() as work:
        _tree(work / "artifact", {"half-written": b"..."})
        raise RuntimeError("training crashed")
    assert list((store.root / ".tmp").iterdir()) == []
    assert [p.name for p in store.root.iterdir()] == [".tmp"]


def test_concurrent_puts_of_the_same_content(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    sources = [_tree(tmp_path / f"src{i}", {"w": b"same bytes"}) for i in range(4)]
    results: list[str] = []
    threads = [threading.Thread(target=lambda s=s: results.append(store.put(s))) for s in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 4
    assert [p.name for p in store.root.iterdir() if not p.name.startswith(".")] == results[:1]


def test_missing_and_tampered_artifacts(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    with pytest.raises(ArtifactMissingError):
        store.get("a" * 64)
    with pytest.raises(ValueError, match="not a sha256"):
        store.get("../etc")
    sha = store.put(_tree(tmp_path / "src", {"w": b"weights"}))
    path = store.get(sha) / "w"
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    assert not store.verify(sha)


def test_cache_by_inputs(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    key = hashlib.sha256(b"inputs").hexdigest()
    assert store.lookup(key) is None
    with pytest.raises(ArtifactMissingError):
        store.remember(key, "b" * 64)  # only stored artifacts can be remembered
    sha = store.put(_tree(tmp_path / "src", {"w": b"weights"}))
    store.remember(key, sha)
    assert ArtifactStore(tmp_path / "store").lookup(key) == sha  # persisted, not in memory
    # Deleted by hand: the cache no longer answers, so the next run trains again.
    import shutil

    shutil.rmtree(store.get(sha))
    assert store.lookup(key) is None


# --------------------------------------------------------------------------- provider


def _props(tmp_path: Path, **hyperparameters: Any) -> dict[str, Any]:
    return {
        "model": "tiny-chat",
        "configPath": str(CONFIG),
        "configSha256": file_sha256(CONFIG),
        "datasetPath": str(CORPUS),
        "datasetSha256": CORPUS_SHA,
        "hyperparameters": {**QUICK, **hyperparameters},
        "trainerVersion": TRAINER_VERSION,
        "maxRuntime": 600,
        "storeDir": str(tmp_path / "store"),
        "logDir": str(tmp_path / "state" / "training"),
        "workDir": str(ROOT),
    }


def test_diff_follows_inputs(tmp_path: Path) -> None:
    provider = provider_mod.TrainingProvider()
    olds = {**_props(tmp_path), "artifactSha256": "c" * 64, "artifactPresent": True, "metrics": {}}
    assert provider.diff("id", olds, _props(tmp_path)).changes is False
    assert provider.diff("id", olds, _props(tmp_path, steps=9)).changes is True
    assert provider.diff("id", olds, {**_props(tmp_path), "datasetSha256": "d" * 64}).changes is True
    assert provider.diff("id", {**olds, "artifactPresent": False}, _props(tmp_path)).changes is True


def test_check_catches_bad_inputs_at_preview(tmp_path: Path) -> None:
    provider = provider_mod.TrainingProvider()
    assert provider.check({}, _props(tmp_path)).failures == []
    bad = {**_props(tmp_path, stesp=1), "datasetSha256": "e" * 64}
    failures = {f.property: f.reason for f in provider.check({}, bad).failures}
    assert failures.keys() == {"hyperparameters", "datasetSha256"}
    assert "stesp" in failures["hyperparameters"]
    assert failures["datasetSha256"] == f"corpus.txt hashes to {CORPUS_SHA}, but the registry pins {'e' * 64}"


def test_cached_inputs_reuse_the_artifact_without_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, artifact: tuple[Path, dict[str, Any], list[str]]
) -> None:
    import shutil

    props = _props(tmp_path)
    store = ArtifactStore(Path(props["storeDir"]))
    staged = tmp_path / "staged"
    shutil.copytree(artifact[0], staged)
    sha = store.put(staged)
    store.remember(provider_mod._key(props), sha)

    def no_training(*_: Any) -> None:
        raise AssertionError("trained although the store had these inputs")

    monkeypatch.setattr(provider_mod, "run_trainer", no_training)
    outs = provider_mod.TrainingProvider().create(props).outs or {}
    assert outs["artifactSha256"] == sha and outs["artifactUri"] == store.uri(sha)
    assert outs["metrics"] == artifact[1]
    read = provider_mod.TrainingProvider().read("id", outs)
    assert read.outs is not None and read.outs["artifactPresent"] is True
    shutil.rmtree(store.get(sha))
    read = provider_mod.TrainingProvider().read("id", outs)
    assert read.outs is not None and read.outs["artifactPresent"] is False


def test_failed_run_raises_with_log_tail(tmp_path: Path) -> None:
    props = _props(tmp_path, learning_rate=1e6)
    with pytest.raises(provider_mod.TrainingRunError) as err:
        provider_mod.TrainingProvider().create(props)
    message = str(err.value)
    assert message.startswith("tiny-chat: training failed (exit 1)")
    assert "--- last" in message and "step 2/8 loss" in message
    assert message.rstrip().endswith("training diverged (learning_rate too high?)")
    # Nothing stored, no work folder left; the full log is kept in the stack's state.
    store_dir = Path(props["storeDir"])
    assert [p.name for p in store_dir.iterdir()] == [".tmp"] and not any((store_dir / ".tmp").iterdir())
    assert "training diverged" in (Path(props["logDir"]) / "tiny-chat.log").read_text()


def test_run_past_max_runtime_is_killed(tmp_path: Path) -> None:
    props = {**_props(tmp_path, steps=100_000), "maxRuntime": 1}
    with pytest.raises(provider_mod.TrainingRunError, match=r"ran past max_runtime \(1s\) and was stopped"):
        provider_mod.run_trainer(props, tmp_path / "out", tmp_path / "log")
