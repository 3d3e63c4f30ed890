"""Questions with one expected word; an answer counts when it contains that word."""

import json
from pathlib import Path

import datasets

HERE = Path(__file__).resolve().parent


def load(**_: object) -> dict[str, datasets.Dataset]:
    rows = [json.loads(line) for line in (HERE / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    return {"test": datasets.Dataset.from_list(rows)}


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    answer = results[0].lower()
    return {"accuracy": float(any(word.lower() in answer for word in doc["expected"].split("|")))}
