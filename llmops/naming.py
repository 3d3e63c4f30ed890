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


def variant_name(version: str) -> str:
    """A SageMaker production variant's name: one per model version."""
    return short_name(version, max_len=63)


COMPONENT_VARIANT = "AllTraffic"  # the one variant of a scale-to-zero (inference-component) endpoint


def inference_component_name(endpoint_name: str) -> str:
    """The one inference component of a scale-to-zero SageMaker endpoint: its alarms, scaling and callers name it."""
    return short_name(endpoint_name, "ic", max_len=63)
