"""Held-out documents, rendered as the trainer renders them (chat turns through its template)."""

from pathlib import Path

import datasets
import jinja2

from llmops.local.train import CHAT_TEMPLATE, EOS, documents

HERE = Path(__file__).resolve().parent


def load(**_: object) -> dict[str, datasets.Dataset]:
    template = jinja2.Environment().from_string(CHAT_TEMPLATE)
    texts = [
        doc + EOS if isinstance(doc, str) else template.render(messages=doc, add_generation_prompt=False)
        for doc in documents((HERE / "heldout.txt").read_text(encoding="utf-8"))
    ]
    return {"test": datasets.Dataset.from_list([{"text": t} for t in texts])}
