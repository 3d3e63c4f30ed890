"""Inference data capture in SageMaker's data-capture format, written by the local front, read for both targets.

A record is one JSON line, exactly as SageMaker endpoint data capture writes to S3:

    {"captureData": {"endpointInput":  {"observedContentType": "application/json", "mode": "INPUT",
                                        "data": "<request body>", "encoding": "JSON"},
                     "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                        "data": "<response body>", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceTime": "2026-01-01T00:00:00Z"},
     "eventVersion": "0"}

Files follow SageMaker's layout, `<root>/<model>/<variant>/yyyy/mm/dd/hh/<stamp>-<n>.jsonl`, so
`read_capture` reads a local folder or a synced copy of the capture bucket alike.

`CaptureWriter` samples requests, redacts personal data per the dataset's PII policy
(presidio pattern recognizers), writes from a background thread (the request path
only enqueues), rotates files at `max_file_bytes` and deletes the oldest files once
the folder holds more than `max_total_bytes`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import random
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

CAPTURE_CONFIG = "capture.json"  # beside the front's routes.json


class CaptureConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str = Field(description="Folder the model's capture files go under.")
    model: str
    sample: float = Field(default=1.0, ge=0, le=1, description="Share of requests captured.")
    max_file_bytes: int = Field(default=1 << 20, ge=1024, description="A file rotates past this size.")
    max_total_bytes: int = Field(default=64 << 20, ge=4096, description="Oldest files go past this total.")
    pii_entities: list[str] = Field(default_factory=list, description="presidio entities redacted; [] keeps all.")
    queue_size: int = Field(default=10_000, ge=1, description="Records waiting to be written; more are dropped.")


@dataclass(frozen=True)
class Exchange:
    """One captured request and answer, as a drift monitor reads it."""

    prompt: str
    answer: str
    variant: str
    time: str


def capture_record(request: dict[str, Any], response: dict[str, Any], when: datetime | None = None) -> dict[str, Any]:
    when = when or datetime.now(UTC)

    def part(mode: str, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "observedContentType": "application/json",
            "mode": mode,
            "data": json.dumps(body, separators=(",", ":"), ensure_ascii=False),
            "encoding": "JSON",
        }

    return {
        "captureData": {"endpointInput": part("INPUT", request), "endpointOutput": part("OUTPUT", response)},
        "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "eventVersion": "0",
    }


class CaptureWriter:
    def __init__(self, config: CaptureConfig, rng: random.Random | None = None):
        self.config = config
        self.rng = rng or random.Random()
        self.folder = Path(config.root) / config.model
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue[tuple[str, dict[str, Any], dict[str, Any]] | None] = queue.Queue(config.queue_size)
        self._file: Any = None
        self._path: Path | None = None
        self._size = 0
        self._seq = 0
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        self._thread.start()

    @classmethod
    def from_file(cls, path: Path) -> CaptureWriter | None:
        """The writer a front's capture.json asks for, or None when there is none."""
        if not path.is_file():
            return None
        return cls(CaptureConfig.model_validate_json(path.read_text()))

    def offer(self, variant: str, request: dict[str, Any], response: dict[str, Any]) -> bool:
        """Capture this exchange if sampled; never blocks the request (a full queue drops it)."""
        if self.rng.random() >= self.config.sample:
            return False
        try:
            self._queue.put_nowait((variant, request, response))
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def close(self, timeout: float = 10) -> None:
        """Write what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def flush(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        if self.config.pii_entities:  # load the recognizers now, not on the first captured request
            from llmops.datasets.pii import find

            find("", self.config.pii_entities)
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    break
                variant, request, response = item
                self._write(variant, redact_exchange(request, response, self.config.pii_entities))
            except Exception as exc:  # a bad record must not stop capture
                self.dropped += 1
                print(f"capture: record dropped: {exc}", flush=True)
            finally:
                self._queue.task_done()
        if self._file is not None:
            self._file.close()

    def _write(self, variant: str, record: tuple[dict[str, Any], dict[str, Any]]) -> None:
        now = datetime.now(UTC)
        line = (json.dumps(capture_record(*record, when=now), ensure_ascii=False) + "\n").encode()
        if self._file is None or self._size + len(line) > self.config.max_file_bytes:
            self._rotate(variant, now)
        self._file.write(line)
        self._file.flush()
        self._size += len(line)
        self.written += 1

    def _rotate(self, variant: str, now: datetime) -> None:
        if self._file is not None:
            self._file.close()
        folder = self.folder / variant / now.strftime("%Y/%m/%d/%H")
        folder.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        # Names sort in write order (time, then this writer's sequence); the random part keeps two writers apart.
        self._path = folder / f"{now.strftime('%Y%m%dT%H%M%S')}-{self._seq:06d}-{uuid.uuid4().hex[:8]}.jsonl"
        self._file = self._path.open("ab")
        self._size = 0
        self._enforce_bound()

    def _enforce_bound(self) -> None:
        """Delete the oldest files until the folder (current file included) fits the bound."""
        files = sorted(self.folder.rglob("*.jsonl"), key=lambda p: (p.stat().st_mtime, p.name))
        total = sum(p.stat().st_size for p in files)
        for path in files:
            if total + self.config.max_file_bytes <= self.config.max_total_bytes or path == self._path:
                break
            total -= path.stat().st_size
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def redact_exchange(
    request: dict[str, Any], response: dict[str, Any], entities: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Request and response with personal data in message texts replaced by `<ENTITY>`."""
    if not entities:
        return request, response
    from llmops.datasets.pii import redact

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return redact(value, entities)[0]
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) if k in ("content", "prompt", "text", "messages", "choices", "message") else v
                    for k, v in value.items()}  # fmt: skip
        return value

    return clean(request), clean(response)


# --------------------------------------------------------------------------- reading (both targets)


def _decode(part: dict[str, Any]) -> Any:
    data = part.get("data", "")
    if part.get("encoding") == "BASE64":
        data = base64.b64decode(data).decode("utf-8", errors="replace")
    try:
        return json.loads(data)
    except (TypeError, ValueError):
        return data


def prompt_of(body: Any) -> str:
    """The user's text of an OpenAI chat/completions body, or a TGI/LMI `inputs` body."""
    if isinstance(body, dict):
        messages = body.get("messages")
        if isinstance(messages, list):
            users = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
            return str(users[-1]) if users else ""
        for key in ("prompt", "inputs"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return body if isinstance(body, str) else ""


def answer_of(body: Any) -> str:
    if isinstance(body, list) and body and isinstance(body[0], dict):  # TGI: [{"generated_text": …}]
        return str(body[0].get("generated_text", ""))
    if isinstance(body, dict):
        choices = body.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            c = choices[0]
            msg = c.get("message")
            return str(msg.get("content") or "") if isinstance(msg, dict) else str(c.get("text") or "")
        if "generated_text" in body:
            return str(body["generated_text"])
    return body if isinstance(body, str) else ""


def read_capture(root: Path, model: str | None = None) -> Iterator[Exchange]:
    """Every exchange under `root` (a local capture folder or a synced SageMaker capture prefix)."""
    base = root / model if model else root
    for path in sorted(base.rglob("*.jsonl")):
        variant = path.relative_to(base).parts[0] if model else ""
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:  # rotated away while reading
            continue
        for line in lines:
            try:
                rec = json.loads(line)
                data = rec["captureData"]
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line of a file being written
            yield Exchange(
                prompt=prompt_of(_decode(data.get("endpointInput", {}))),
                answer=answer_of(_decode(data.get("endpointOutput", {}))),
                variant=variant,
                time=str(rec.get("eventMetadata", {}).get("inferenceTime", "")),
            )


# --------------------------------------------------------------------------- settings from the registry


def capture_root(state_dir: Path) -> Path:
    """Where a local stack's fronts write capture files: <state_dir>/capture/<model>/<variant>/yyyy/mm/dd/hh/."""
    return state_dir / "capture"


def capture_settings(entry: Any, root: Path, state_dir: Path) -> dict[str, Any] | None:
    """The front's capture.json for a registry model (None when capture is off). PII is redacted per
    the training dataset's policy (its entities unless it allows personal data), else the default entities."""
    capture = entry.monitoring.capture
    if not capture.enabled:
        return None
    from llmops.datasets.registry import DEFAULT_ENTITIES

    entities: list[str] = list(DEFAULT_ENTITIES)
    dataset = entry.training.dataset if entry.training else None
    if dataset is not None and dataset.name:
        from llmops.datasets.registry import load_datasets

        registry, _ = load_datasets(root)
        ds = registry.datasets.get(dataset.name)
        if ds is not None:
            entities = [] if ds.pii.action == "allow" else list(ds.pii.entities)
    config = CaptureConfig(
        root=str(capture_root(state_dir)),
        model=entry.name,
        sample=capture.sample,
        max_file_bytes=max(1024, int(capture.max_file_mb * (1 << 20))),
        max_total_bytes=max(4096, int(capture.max_total_mb * (1 << 20))),
        pii_entities=entities,
    )
    return config.model_dump()
