"""Names the platform gives cloud resources, shared by the components and the core that reads them back."""

from __future__ import annotations

import hashlib
import re


def short_name(*parts: str, max_len: int = 63) -> str:
    """A DNS/AWS-safe name from parts; over `max_len` it is cut and suffixed with a
    stable hash, so two long names never collide and the same input always maps
    to the same name (names are part of the URN/physical-name contract)."""
    raw = "-".join(p for p in parts if p)
    name = re.sub(r"[^a-zA-Z0-9-]+", "-", raw).strip("-").lower()
    if len(name) <= max_len:
        return name
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{name[: max_len - 9].rstrip('-')}-{digest}"
