"""Fine-tune a causal LM on a text corpus: the entry point of AWS training runs.

Runs inside the Hugging Face training container, as the script of a SageMaker
training step (inputs in SM_CHANNEL_TRAIN, hyperparameters in SM_HPS or as
`--key value` arguments, the model written to SM_MODEL_DIR) and as the command
of a Kubernetes Job (the same variables, set by the Job). Checkpoints go to
/opt/ml/checkpoints, which SageMaker syncs to the checkpoint S3 URI, so a spot
interruption resumes from the last one. On Kubernetes, CHECKPOINT_URI does the
same (checkpoints are fetched at start and uploaded on every save) and
`output_uri` names the S3 prefix the finished model is uploaded to.

Hyperparameters: base_model (Hub id), epochs, steps (overrides epochs),
batch_size, seq_len, learning_rate, seed, save_steps; dataset_file and dataset_md5 (a
registry dataset's train split and its pinned md5, checked before training); `method: lora` (with
lora_r, lora_alpha, lora_dropout) trains low-rank adapters with peft and saves
them merged into the base weights, so serving loads one ordinary checkpoint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

CHECKPOINTS = Path("/opt/ml/checkpoints")
TEXT_KEYS = {"base_model", "dataset_file", "dataset_md5"}  # hyperparameters kept as text


def _hyperparameters(argv: list[str]) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(os.environ.get("SM_HPS", "{}"))
    parser = argparse.ArgumentParser()
    _, rest = parser.parse_known_args(argv)
    for key, value in zip(rest[::2], rest[1::2], strict=False):
        raw[key.lstrip("-").replace("-", "_")] = value
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in TEXT_KEYS:  # an md5 of digits and one `e` would otherwise decode as a number
            out[key] = str(value)
            continue
        try:
            out[key] = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            out[key] = value
    return out


def hub_token(client: Any = None) -> None:
    """A gated base model: read the hub token from the Secrets Manager secret `HF_TOKEN_SECRET`
    names, with this job's own role (it may read that secret and no other), into `HF_TOKEN`."""
    secret = os.environ.get("HF_TOKEN_SECRET")
    if not secret or os.environ.get("HF_TOKEN"):
        return
    if client is None:
        import boto3

        client = boto3.client("secretsmanager")
    os.environ["HF_TOKEN"] = client.get_secret_value(SecretId=secret)["SecretString"]


def check_dataset(data_dir: Path, hp: dict[str, Any]) -> str | None:
    """A registry dataset's train split (`dataset_file`) must hash to the md5 the registry pins
    (`dataset_md5`): content that changed without a new dataset version is refused. The problem, or None."""
    expected, name = hp.get("dataset_md5"), hp.get("dataset_file")
    if not expected or not name:
        return None  # a raw URI: nothing pinned to check
    path = data_dir / str(name)
    if not path.is_file():
        found = sorted(p.name for p in data_dir.glob("*"))
        return f"the dataset's train split {name} is not in {data_dir} (found: {found})"
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != str(expected):
        return (
            f"{name} hashes to {digest.hexdigest()}, not the registry's pinned {expected}: the dataset "
            "changed without a new version; refusing to train on it"
        )
    return None


def _download(uri: str, target: Path, *, recursive: bool = False) -> Path:
    import boto3

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            relative = obj["Key"][len(prefix) :].lstrip("/") if recursive else Path(obj["Key"]).name
            dest = target / relative
            dest.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(dest))
    return target


def _upload(source: Path, uri: str) -> None:
    import boto3

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3")
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        s3.upload_file(str(path), bucket, f"{prefix.rstrip('/')}/{path.relative_to(source)}")


def main(argv: list[str]) -> int:
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )
    from transformers.trainer_utils import get_last_checkpoint

    hp = _hyperparameters(argv)
    hub_token()
    data_dir = Path(os.environ.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    if hp.get("dataset_uri") and not any(data_dir.glob("*")):
        _download(str(hp["dataset_uri"]), data_dir)
    problem = check_dataset(data_dir, hp)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    base = str(hp["base_model"])
    seq_len = int(hp.get("seq_len", 1024))
    checkpoint_uri = os.environ.get("CHECKPOINT_URI", "")
    if checkpoint_uri:
        _download(checkpoint_uri, CHECKPOINTS, recursive=True)

    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base, torch_dtype=torch.bfloat16)
    lora = str(hp.get("method", "full")) == "lora"
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=int(hp.get("lora_r", 16)),
                lora_alpha=int(hp.get("lora_alpha", 32)),
                lora_dropout=float(hp.get("lora_dropout", 0.05)),
                task_type="CAUSAL_LM",
            ),
        )

    text = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(data_dir.rglob("*")) if p.is_file())
    ids = tokenizer(text, return_attention_mask=False)["input_ids"]
    blocks = [ids[i : i + seq_len] for i in range(0, len(ids) - seq_len + 1, seq_len)]
    if not blocks:
        print(f"the corpus holds fewer than {seq_len} tokens", file=sys.stderr)
        return 1

    steps = int(hp.get("steps", -1))
    args = TrainingArguments(
        output_dir=str(CHECKPOINTS),
        per_device_train_batch_size=int(hp.get("batch_size", 4)),
        num_train_epochs=float(hp.get("epochs", 1)),
        max_steps=steps,
        learning_rate=float(hp.get("learning_rate", 2e-5)),
        seed=int(hp.get("seed", 0)),
        bf16=torch.cuda.is_available(),
        save_steps=int(hp.get("save_steps", 200)),
        save_total_limit=2,
        logging_steps=10,
        report_to=[],
    )

    class SyncCheckpoints(TrainerCallback):
        def on_save(self, *_: Any, **__: Any) -> None:
            if checkpoint_uri:
                _upload(CHECKPOINTS, checkpoint_uri)

    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=[{"input_ids": b} for b in blocks],
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        callbacks=[SyncCheckpoints()],
    )
    resume = get_last_checkpoint(str(CHECKPOINTS)) if CHECKPOINTS.is_dir() else None
    result = trainer.train(resume_from_checkpoint=resume)
    if lora:
        model = model.merge_and_unload()
        model.save_pretrained(str(model_dir))
    else:
        trainer.save_model(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    (model_dir / "metrics.json").write_text(json.dumps(result.metrics, indent=2))
    if hp.get("output_uri"):
        _upload(model_dir, str(hp["output_uri"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
