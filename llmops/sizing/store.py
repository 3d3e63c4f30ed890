"""The sizing caches' file format: one JSON object of key -> entry per file, under the state folder.

Read once per process and kept in memory; a write replaces the whole file atomically, so
a reader sees the old file or the new one, never half of one. A damaged or unreadable
file reads as empty (the caller sizes again), and a read-only checkout still sizes, only
without the cache.
"""

from __future__ import annotations

import atexit
import json
import os
import tempfile
from pathlib import Path
from typing import Any

CACHE_ENV = "LLMOPS_SIZING_CACHE"  # the parameter cache file; the other caches sit beside it
MEMORY: dict[str, dict[str, Any]] = {}  # cache file -> key -> entry, as read or written by this process


def cache_dir() -> Path:
    """The sizing caches' folder: $LLMOPS_SIZING_CACHE's, else .state/sizing/ of the checkout."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).parent
    from llmops import paths

    return paths.state_dir() / "sizing"


def read_entries(path: Path) -> dict[str, Any]:
    cached = MEMORY.get(str(path))
    if cached is not None:
        return cached
    try:
        loaded = json.loads(path.read_text())
        entries = {k: v for k, v in loaded.items() if isinstance(v, dict)} if isinstance(loaded, dict) else {}
    except (OSError, ValueError):  # absent or damaged: size again
        entries = {}
    MEMORY[str(path)] = entries
    return entries


def write_entry(path: Path, key: str, entry: dict[str, Any], keep: int | None = None, *, defer: bool = False) -> None:
    """Add `entry` under `key`; with `keep`, drop the oldest entries beyond that many.

    `defer` writes the file once, when the process exits, instead of now: a registry of a
    thousand models then costs one write, not a thousand rewrites of a growing file.
    """
    entries = read_entries(path)
    entries.pop(key, None)
    entries[key] = entry  # newest last, so the oldest are first to go
    if keep is not None:
        for stale in list(entries)[: max(0, len(entries) - keep)]:
            del entries[stale]
    if not defer:
        _save(path)
    elif str(path) not in _pending:
        if not _pending:
            atexit.register(_save_pending)
        _pending.add(str(path))


_pending: set[str] = set()  # files with deferred writes


def _save_pending() -> None:
    for name in sorted(_pending):
        _save(Path(name))
    _pending.clear()


def _save(path: Path) -> None:
    entries = MEMORY.get(str(path), {})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
            json.dump(entries, tmp, indent=0)
        os.replace(tmp.name, path)
    except OSError:
        pass
