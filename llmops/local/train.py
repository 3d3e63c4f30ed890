"""Train a small causal LM from scratch on CPU (or fine-tune an artifact, `--base DIR`): tokenizer, model, artifact.

    python -m llmops.local.train --config models/configs/tiny-chat.json \\
        --dataset models/data/corpus.txt --sha256 <hex> \\
        --hyperparameters '{"steps": 300}' --out DIR

Steps: verify the dataset's sha256; train a byte-level BPE tokenizer with
`tokenizers` (vocabulary size from the config); build the model from the
transformers config with fresh weights; train it with AdamW; evaluate on a
held-out slice of the documents; write DIR as a transformers checkpoint
(`from_pretrained` loads the model and the tokenizer, which carries a chat
template and eos/pad tokens) plus `metrics.json` and `training.json`.

Progress (`step N/M loss X`) goes to stderr; any failure exits non-zero with a
one-line reason last. torch and transformers are imported inside `train()`, so
the hyperparameter schema and `inputs_key` stay cheap to import (the
Pulumi provider uses them at preview).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# Bump when a change to this module would make the same inputs train a different model:
# it is part of the training-inputs key, so stacks retrain and cached artifacts are not reused.
TRAINER_VERSION = "1"

# Special tokens first, so their ids are fixed (the config's pad/bos/eos ids must match).
PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|end|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = (PAD, BOS, EOS, *ROLE_TOKENS)

# One turn per role token, each closed by the eos token, so generation stops at the end
# of the assistant's turn.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|' + message['role'] + '|>' + message['content'] | trim + '<|end|>' + '\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>' }}{%- endif -%}"
)
_ROLES = {"User": "user", "Assistant": "assistant", "System": "system"}


class TrainingError(RuntimeError):
    """A run that cannot succeed: bad inputs or a diverging loss."""


class Hyperparameters(BaseModel):
    """The registry's `training.hyperparameters` for a local run; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(default=200, ge=1, le=1_000_000)
    batch_size: int = Field(default=16, ge=1, le=4096)
    seq_len: int = Field(default=64, ge=8)
    learning_rate: float = Field(default=6e-3, gt=0)
    warmup_steps: int | None = Field(default=None, ge=0, description="Default: a tenth of steps.")
    weight_decay: float = Field(default=0.1, ge=0)
    grad_clip: float = Field(default=1.0, gt=0)
    eval_fraction: float = Field(default=0.05, gt=0, lt=0.5)
    seed: int = 0
    threads: int = Field(default=0, ge=0, description="torch CPU threads; 0: half the CPUs this process may use.")
    log_every: int = Field(default=0, ge=0, description="Steps between progress lines; 0: about 20 lines a run.")

    @model_validator(mode="after")
    def _warmup(self) -> Hyperparameters:
        if self.warmup_steps is not None and self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must be below steps ({self.steps})")
        return self

    @property
    def warmup(self) -> int:
        return self.steps // 10 if self.warmup_steps is None else self.warmup_steps


def parse_hyperparameters(values: dict[str, Any]) -> Hyperparameters:
    """Validate, with a one-line message per problem."""
    try:
        return Hyperparameters.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(all)'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False)
        )
        raise TrainingError(f"invalid hyperparameters: {problems}") from None


def inputs_key(
    config: dict[str, Any], dataset_sha256: str, hyperparameters: dict[str, Any], base: str | None = None
) -> str:
    """The training-inputs key: what must match for a stored artifact to stand for a new run.

    Defaults are filled in, so `{}` and the same values written out share a key. `base` (the
    sha256 of the artifact a fine-tune starts from) is in the key only when given, so runs from
    scratch keep the keys they had.
    """
    resolved = parse_hyperparameters(hyperparameters).model_dump()
    doc = {"config": config, "dataset": dataset_sha256, "hyperparameters": resolved, "trainer": TRAINER_VERSION}
    if base is not None:
        doc["base"] = base
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# --------------------------------------------------------------------------- data


def documents(text: str) -> list[str | list[dict[str, str]]]:
    """Blank-line separated documents; `User:`/`Assistant:` ones become chat messages."""
    out: list[str | list[dict[str, str]]] = []
    for block in text.split("\n\n"):
        block = block.strip()
        if not block:
            continue
        messages: list[dict[str, str]] = []
        for line in block.splitlines():
            role, sep, content = line.partition(": ")
            if sep and role in _ROLES:
                messages.append({"role": _ROLES[role], "content": content})
            elif messages:
                messages[-1]["content"] += "\n" + line  # continuation of the previous turn
            else:
                break
        else:
            out.append(messages)
            continue
        out.append(block)
    return out


def train_tokenizer(texts: list[str], vocab_size: int, max_length: int | None = None) -> Any:
    """A byte-level BPE tokenizer (any input encodes; no unknown token) with the chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < len(SPECIAL_TOKENS) + 256:
        raise TrainingError(f"vocab_size {vocab_size} is too small for a byte-level tokenizer (need >= 262)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=list(ROLE_TOKENS),
        chat_template=CHAT_TEMPLATE,
        model_max_length=max_length,
    )


# --------------------------------------------------------------------------- training


def _threads(requested: int) -> int:
    """Half the usable CPUs by default: the engine and the stack's servers share the machine,
    and oversubscribed OpenMP threads spin-wait, which is far slower than fewer threads."""
    if requested:
        return requested
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // 2)


def train(
    config_path: Path,
    dataset_path: Path,
    dataset_sha256: str,
    hyperparameters: dict[str, Any],
    out: Path,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    base: Path | None = None,
) -> dict[str, Any]:
    """Train and write the artifact to `out` (created; must not hold files). Returns the metrics.

    With `base` (an artifact folder), fine-tune it: its tokenizer and weights are the start,
    and the config file only has to describe the same architecture."""
    hp = parse_hyperparameters(hyperparameters)
    data = dataset_path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != dataset_sha256:
        raise TrainingError(
            f"dataset sha256 mismatch: {dataset_path.name} hashes to {actual}, expected {dataset_sha256}"
        )
    original_config = json.loads(config_path.read_text())
    config_doc = dict(original_config)
    if out.exists() and any(out.iterdir()):
        raise TrainingError(f"{out} is not empty")

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, get_cosine_schedule_with_warmup
    from transformers.utils import logging as hf_logging

    # Progress bars are not lines: they would garble the progress stream `pulumi up` shows.
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

    started = time.perf_counter()
    torch.set_num_threads(_threads(hp.threads))
    torch.manual_seed(hp.seed)
    random.seed(hp.seed)

    docs = documents(data.decode("utf-8"))
    if len(docs) < 2:
        raise TrainingError(f"{dataset_path.name} holds {len(docs)} document(s); need at least 2 to hold one out")
    random.Random(hp.seed).shuffle(docs)
    n_eval = max(1, round(len(docs) * hp.eval_fraction))
    train_docs, eval_docs = docs[n_eval:], docs[:n_eval]

    window = hp.seq_len
    max_positions = int(config_doc.get("max_position_embeddings") or config_doc.get("n_positions") or 0)
    if max_positions and window > max_positions:
        raise TrainingError(f"seq_len {window} exceeds the config's max_position_embeddings {max_positions}")
    vocab_size = int(config_doc.get("vocab_size", 0))
    plain = [d if isinstance(d, str) else "\n".join(m["content"] for m in d) for d in train_docs]
    if base is not None:
        tokenizer = AutoTokenizer.from_pretrained(base)
    else:
        tokenizer = train_tokenizer(plain, vocab_size, max_positions or None)

    def encode(batch: list[str | list[dict[str, str]]]) -> Any:
        texts = [d + EOS if isinstance(d, str) else tokenizer.apply_chat_template(d, tokenize=False) for d in batch]
        encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
        return torch.tensor([i for ids in encoded for i in ids], dtype=torch.long)

    train_ids, eval_ids = encode(train_docs), encode(eval_docs)
    if len(train_ids) <= window or len(eval_ids) < 2:
        raise TrainingError(f"too little text: {len(train_ids)} training tokens for seq_len {window}")

    # Token ids of the tokenizer win over whatever the config file says.
    config_doc.update(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model_type = config_doc.pop("model_type", None)
    if not model_type:
        raise TrainingError(f"{config_path.name} has no model_type")
    if base is not None:
        model = AutoModelForCausalLM.from_pretrained(base)
        if model.config.model_type != model_type:
            raise TrainingError(f"base {base.name} is a {model.config.model_type}, the config a {model_type}")
        log(f"fine-tuning {base.name[:12]}")
    else:
        config = AutoConfig.for_model(model_type, **config_doc)
        model = AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
    parameters = sum(p.numel() for p in model.parameters())
    log(
        f"model {model_type}: {parameters / 1e6:.2f}M parameters, vocab {len(tokenizer)}, "
        f"{len(train_ids)} training / {len(eval_ids)} eval tokens, {torch.get_num_threads()} threads"
    )

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=hp.learning_rate,
        betas=(0.9, 0.95),
    )
    schedule = get_cosine_schedule_with_warmup(optimizer, hp.warmup, hp.steps)
    generator = torch.Generator().manual_seed(hp.seed)
    every = hp.log_every or max(1, hp.steps // 20)

    model.train()
    train_started = time.perf_counter()
    recent: list[float] = []
    loss_value = float("nan")
    for step in range(1, hp.steps + 1):
        starts = torch.randint(0, len(train_ids) - window, (hp.batch_size,), generator=generator)
        batch = torch.stack([train_ids[s : s + window] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        loss_value = float(loss.item())
        if not math.isfinite(loss_value):
            raise TrainingError(f"loss is {loss_value} at step {step}: training diverged (learning_rate too high?)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), hp.grad_clip)
        optimizer.step()
        schedule.step()
        recent = [*recent[-9:], loss_value]
        if step % every == 0 or step == hp.steps:
            elapsed = time.perf_counter() - train_started
            rate = step * hp.batch_size * window / elapsed if elapsed > 0 else 0.0
            log(f"step {step}/{hp.steps} loss {loss_value:.4f} lr {schedule.get_last_lr()[0]:.2e} {rate:,.0f} tok/s")
    train_seconds = time.perf_counter() - train_started

    eval_loss = evaluate(model, eval_ids, window, hp.batch_size)
    log(f"eval loss {eval_loss:.4f} (perplexity {math.exp(min(eval_loss, 50)):.1f})")

    metrics = {
        "final_loss": round(sum(recent) / len(recent), 4),
        "last_step_loss": round(loss_value, 4),
        "eval_loss": round(eval_loss, 4),
        "eval_perplexity": round(math.exp(min(eval_loss, 50)), 3),
        "steps": hp.steps,
        "parameters": parameters,
        "train_tokens": hp.steps * hp.batch_size * window,
        "seconds": round(time.perf_counter() - started, 2),
        "train_seconds": round(train_seconds, 2),
        "tokens_per_second": round(hp.steps * hp.batch_size * window / train_seconds, 1),
        "threads": torch.get_num_threads(),
    }
    inputs = {
        "trainer_version": TRAINER_VERSION,
        "config": original_config,
        "config_file": config_path.name,
        "dataset_file": dataset_path.name,
        "dataset_sha256": dataset_sha256,
        "hyperparameters": hp.model_dump(),
        "inputs_key": inputs_key(original_config, dataset_sha256, hyperparameters, base.name if base else None),
        **({"base_sha256": base.name} if base is not None else {}),
        "versions": {name: _version(name) for name in ("torch", "transformers", "tokenizers")},
    }
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "training.json").write_text(json.dumps(inputs, indent=2, sort_keys=True) + "\n")
    return metrics


def evaluate(model: Any, ids: Any, window: int, batch_size: int) -> float:
    """Mean next-token loss over consecutive windows of the held-out tokens."""
    import torch

    model.eval()
    full = len(ids) // window
    batches = list(ids[: full * window].view(full, window).split(batch_size)) if full else []
    if len(ids) - full * window >= 2:
        batches.append(ids[full * window :][None])  # the short tail, alone so it needs no padding
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            predicted = batch.shape[0] * (batch.shape[1] - 1)  # the model shifts labels by one
            total += float(model(input_ids=batch, labels=batch).loss) * predicted
            count += predicted
    model.train()
    return total / count


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def initialised_checkpoint(root: Path, out: Path, *, timeout: float = 300) -> Path:
    """The tiny-chat architecture and tokenizer with weights as initialised (one step at a
    negligible learning rate), made by this trainer's command line in a child process: a
    checkpoint for serving tests and benchmarks that need no real training run."""
    corpus = root / "models" / "data" / "corpus.txt"
    hyper = {"steps": 1, "batch_size": 1, "seq_len": 8, "learning_rate": 1e-9, "eval_fraction": 0.01}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "llmops.local.train",
            "--config",
            str(root / "models" / "configs" / "tiny-chat.json"),
            "--dataset",
            str(corpus),
            "--sha256",
            hashlib.sha256(corpus.read_bytes()).hexdigest(),
            "--hyperparameters",
            json.dumps(hyper),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=timeout,
    )
    return out


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmops.local.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="transformers config.json of the model")
    parser.add_argument("--dataset", type=Path, required=True, help="training text (blank-line separated documents)")
    parser.add_argument("--sha256", required=True, help="the dataset's expected sha256")
    parser.add_argument("--hyperparameters", default="{}", help="JSON object, e.g. '{\"steps\": 5}'")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the artifact to (new or empty)")
    parser.add_argument("--base", type=Path, help="an artifact folder (named by its sha256) to fine-tune")
    parser.add_argument("--lineage", help="JSON object written to the artifact's lineage.json (dataset, commit, …)")
    args = parser.parse_args(argv)
    try:
        hyperparameters = json.loads(args.hyperparameters)
        if not isinstance(hyperparameters, dict):
            raise TrainingError("--hyperparameters must be a JSON object")
        metrics = train(args.config, args.dataset, args.sha256, hyperparameters, args.out, base=args.base)
        if args.lineage:
            # Part of the artifact, so its sha256 covers where it came from.
            (args.out / "lineage.json").write_text(
                json.dumps(json.loads(args.lineage), indent=2, sort_keys=True) + "\n"
            )
    except json.JSONDecodeError as exc:
        print(f"error: --hyperparameters is not JSON: {exc}", file=sys.stderr)
        return 2
    except (TrainingError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
