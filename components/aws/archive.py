"""Reproducible code archives: the same files give the same bytes, so an S3 key derived from
their sha256 changes only when the code does (training, evaluation and drift code share it)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterable


def reproducible_targz(files: Iterable[tuple[str, bytes]]) -> tuple[bytes, str]:
    """A tar.gz of (name, content) with fixed mtimes, modes and owners, and its sha256."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT, compresslevel=9) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    # gzip stamps the time into its header: zero it so the same code gives the same bytes.
    raw = raw[:4] + b"\x00\x00\x00\x00" + raw[8:]
    return raw, hashlib.sha256(raw).hexdigest()
