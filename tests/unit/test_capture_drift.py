"""Inference capture (writer, front hook, reader) and drift (Evidently over text descriptors).

Proves: the front captures sampled exchanges (chat and streamed) as SageMaker
data-capture records that `read_capture` reads back; personal data is redacted
before it reaches disk; sampling at 0 writes nothing; under a flood of records the
folder never exceeds its size bound and files rotate; drift over in-distribution
traffic (eval-split prompts with the dataset's own answers) is not flagged, while
another language or very long prompts are, descriptor by descriptor.
Cannot prove: the real model's answers (the engine test drives a real stack).
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from llmops.datasets.capture import CaptureConfig, CaptureWriter, Exchange, read_capture
from llmops.datasets.drift import compute_drift, reference_pairs
from llmops.datasets.registry import load_datasets
from llmops.local.serve import CHAT_ROUTE, create_app
from tests.unit.test_local_serving import Replicas, fake_replica, table

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _writer(tmp_path: Path, **kw: object) -> CaptureWriter:
    config = CaptureConfig(root=str(tmp_path / "capture"), model="tiny-chat", **kw)  # type: ignore[arg-type]
    return CaptureWriter(config, rng=random.Random(0))


def test_front_captures_chat_and_stream_in_sagemaker_format(tmp_path: Path) -> None:
    writer = _writer(tmp_path, pii_entities=["EMAIL_ADDRESS", "PHONE_NUMBER"])
    fakes = {"127.0.0.1:9001": fake_replica("a")}
    app = create_app(
        table=table(("v1", 100, ["127.0.0.1:9001"])), transport=Replicas(fakes), health_interval=60, capture=writer
    )
    prompt = "Write to jane.doe@example.com or call 212-555-0199"
    body = {"model": "tiny-chat", "messages": [{"role": "user", "content": prompt}], "max_tokens": 2}
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        assert client.post(CHAT_ROUTE, json=body).status_code == 200
        with client.stream("POST", CHAT_ROUTE, json={**body, "stream": True}) as r:
            assert r.status_code == 200
            r.read()
    writer.flush(timeout=120)
    writer.close(timeout=120)
    files = list((tmp_path / "capture" / "tiny-chat" / "v1").rglob("*.jsonl"))
    assert len(files) == 1 and len(files[0].relative_to(tmp_path / "capture" / "tiny-chat" / "v1").parts) == 5
    raw = files[0].read_text()
    assert "jane.doe" not in raw and "555-0199" not in raw
    record = json.loads(raw.splitlines()[0])
    assert set(record) == {"captureData", "eventMetadata", "eventVersion"}
    assert record["captureData"]["endpointInput"]["mode"] == "INPUT"
    assert record["captureData"]["endpointOutput"]["encoding"] == "JSON"
    exchanges = list(read_capture(tmp_path / "capture", "tiny-chat"))
    assert [e.prompt for e in exchanges] == ["Write to <EMAIL_ADDRESS> or call <PHONE_NUMBER>"] * 2
    assert [e.answer for e in exchanges] == ["<a><a>", "<a><a>"]
    assert {e.variant for e in exchanges} == {"v1"}


def test_sampling_zero_writes_nothing(tmp_path: Path) -> None:
    writer = _writer(tmp_path, sample=0.0)
    assert not any(writer.offer("v1", {"prompt": "x"}, {"choices": [{"text": "y"}]}) for _ in range(100))
    writer.close(timeout=120)
    assert list((tmp_path / "capture").rglob("*.jsonl")) == []


def test_capture_stays_within_its_size_bound_and_rotates(tmp_path: Path) -> None:
    bound, per_file = 64 * 1024, 8 * 1024
    writer = _writer(tmp_path, max_file_bytes=per_file, max_total_bytes=bound)
    for i in range(2000):  # about 400 KB of records
        writer.offer("v1", {"prompt": f"question {i} " + "x" * 100}, {"choices": [{"text": "answer " * 10}]})
    writer.flush(timeout=120)
    writer.close(timeout=120)
    files = list((tmp_path / "capture").rglob("*.jsonl"))
    total = sum(f.stat().st_size for f in files)
    assert writer.written == 2000
    assert total <= bound
    assert len(files) >= bound // per_file - 1
    assert all(f.stat().st_size <= per_file for f in files)
    # The newest records survive rotation.
    prompts = [e.prompt for e in read_capture(tmp_path / "capture", "tiny-chat")]
    assert prompts[-1].startswith("question 1999 ")


# --------------------------------------------------------------------------- drift


@pytest.fixture(scope="module")
def dataset():  # type: ignore[no-untyped-def]
    registry, _ = load_datasets(ROOT)
    return registry.get("tiny-chat-corpus")


def _traffic(pairs: list[tuple[str, str]], n: int, seed: int) -> list[Exchange]:
    rng = random.Random(seed)
    return [Exchange(prompt=p, answer=a, variant="v1", time="") for p, a in (rng.choice(pairs) for _ in range(n))]


def test_in_distribution_traffic_does_not_drift(dataset) -> None:  # type: ignore[no-untyped-def]
    from llmops.datasets.records import read_records

    # Traffic drawn from the held-out split: other records than the eval reference, split the same way.
    pairs = []
    for rec in read_records(dataset.split_path(ROOT, "held_out")):
        turns = rec.turns()
        pairs += [(p, a) for (r1, p), (r2, a) in itertools.pairwise(turns) if (r1, r2) == ("U", "A")]
    result = compute_drift("tiny-chat", dataset, ROOT, _traffic(pairs, 400, 1))
    assert result.records == 400 and result.reference_records > 20
    assert not result.drifted, result.descriptors
    assert result.score < 0.25


def test_another_language_and_long_prompts_drift(dataset) -> None:  # type: ignore[no-untyped-def]
    ref, _ = reference_pairs(dataset, ROOT)
    german = [
        ("Wie spät ist es heute Abend in Berlin, bitte?", "Es ist acht Uhr."),
        ("Welche Farbe hat der Himmel über den Bergen?", "Der Himmel ist blau."),
        ("Können Sie mir den Weg zum Bahnhof erklären?", "Gehen Sie geradeaus und dann links."),
    ]
    result = compute_drift("tiny-chat", dataset, ROOT, _traffic(german, 200, 2))
    assert result.drifted
    assert result.descriptors["prompt_oov_share"]["drifted"]
    long_prompts = [(p * 40, a) for p, a in ref]
    result = compute_drift("tiny-chat", dataset, ROOT, _traffic(long_prompts, 200, 3))
    assert result.descriptors["prompt_length"]["drifted"]
    assert not result.descriptors["answer_length"]["drifted"]


def test_too_few_records_are_not_judged(dataset) -> None:  # type: ignore[no-untyped-def]
    result = compute_drift("tiny-chat", dataset, ROOT, _traffic([("a", "b")], 5, 0))
    assert not result.drifted and "need 30" in result.note
