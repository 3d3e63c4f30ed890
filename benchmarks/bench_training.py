"""Local training benchmark: the shipped tiny model, as `make up` trains it.

Prints the time of a cold run of the registry's hyperparameters through the
provider's code path (a managed `python -m llmops.local.train` process, then
the store), the final and held-out loss, throughput, the artifact's size, the
time a second stack with the same inputs takes to get it (the store's cache),
and three greedy answers as a smell test.

    .venv/bin/python benchmarks/bench_training.py [--quick]   (quick: 20 steps)
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import time
from contextlib import redirect_stderr
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.quick import quick  # noqa: E402
from components.local.training import TrainingProvider, checked_dataset  # noqa: E402
from llmops.local.store import file_sha256  # noqa: E402
from llmops.local.train import TRAINER_VERSION  # noqa: E402
from llmops.registry import load_registry  # noqa: E402
from llmops.settings import load_all_stacks  # noqa: E402

QUESTIONS = ["What is 7 plus 5?", "What day comes after Friday?", "What does make up do?"]


QUICK = quick()
REFERENCE_S = 40.0
QUICK_STEPS = 20  # quick mode: a run that proves the path, not the model


def main() -> None:
    entry = load_registry(ROOT / "models", load_all_stacks(ROOT / "stacks")).models["tiny-chat"]
    assert entry.training is not None
    config = ROOT / "models" / entry.source.config
    hyperparameters = dict(entry.training.hyperparameters) | ({"steps": QUICK_STEPS} if QUICK else {})
    # The dataset as the program resolves it: the registry dataset's validated, pinned train split.
    dataset_path, dataset_sha, lineage = checked_dataset(ROOT, entry.name, entry.training.dataset, hyperparameters)
    with tempfile.TemporaryDirectory() as tmp:
        props = {
            "model": entry.name,
            "configPath": str(config),
            "configSha256": file_sha256(config),
            "datasetPath": str(dataset_path),
            "datasetSha256": dataset_sha,
            "hyperparameters": hyperparameters,
            "trainerVersion": TRAINER_VERSION,
            "maxRuntime": entry.training.max_runtime,
            "storeDir": str(Path(tmp) / "artifacts"),
            "logDir": str(Path(tmp) / "logs"),
            "workDir": str(ROOT),
            "lineageRecord": lineage,
        }
        provider = TrainingProvider()
        started = time.perf_counter()
        with redirect_stderr(io.StringIO()):
            outs = provider.create(props).outs or {}
        cold = time.perf_counter() - started
        started = time.perf_counter()
        with redirect_stderr(io.StringIO()):
            again = provider.create(props).outs or {}
        warm = time.perf_counter() - started
        assert again["artifactSha256"] == outs["artifactSha256"]

        artifact = Path(outs["artifactUri"].removeprefix("file://"))
        size = sum(f.stat().st_size for f in artifact.iterdir())
        m = outs["metrics"]
        print(f"hyperparameters         {json.dumps(props['hyperparameters'], sort_keys=True)}")
        print(f"cold run (process+store) {cold:8.1f} s   (trainer's own wall time {m['seconds']:.1f} s)")
        print(f"training steps          {m['train_seconds']:8.1f} s   {m['steps']} steps, {m['threads']} thread(s)")
        print(f"throughput              {m['tokens_per_second']:8.0f} tokens/s")
        print(f"final train loss        {m['final_loss']:8.3f}   (mean of the last 10 steps)")
        print(f"held-out loss           {m['eval_loss']:8.3f}   (perplexity {m['eval_perplexity']:.2f})")
        print(f"parameters              {m['parameters']:8d}")
        print(f"artifact size           {size / 1e6:8.2f} MB  ({len(list(artifact.iterdir()))} files)")
        print(f"same inputs, cached     {warm * 1000:8.1f} ms")
        print(f"reference: the README's `make up` training, about {REFERENCE_S:.0f} s for 500 steps on 2 cores")

        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(artifact)
        model = AutoModelForCausalLM.from_pretrained(artifact)
        for question in QUESTIONS:
            messages = [{"role": "user", "content": question}]
            ids = tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            with torch.no_grad():
                out = model.generate(**ids, max_new_tokens=40, do_sample=False)
            answer = tokenizer.decode(out[0][ids["input_ids"].shape[1] :], skip_special_tokens=True)
            print(f"  {question!r} -> {answer!r}")


if __name__ == "__main__":
    main()
