"""The local front's capture settings file (llmops.datasets.capture.CaptureConfig), written before it starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmops.datasets.capture import CAPTURE_CONFIG, CaptureConfig


def write_capture_config(folder: Path, settings: dict[str, Any] | None) -> None:
    """Write (or, when capture is off, remove) `capture.json` in the front's folder."""
    path = folder / CAPTURE_CONFIG
    if not settings:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(CaptureConfig.model_validate(dict(settings)).model_dump_json(indent=2))
    tmp.replace(path)
