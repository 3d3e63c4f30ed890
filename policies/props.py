"""Reading resource properties as the engine hands them to a policy.

The engine gives camelCase keys, numbers as floats, drops `None` inputs, and in
a preview marks values that depend on not-yet-created resources as unknown
(reading one raises `UnknownValueError`). These helpers keep each validator's
code about the rule rather than about those details.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence, Sized
from typing import Any

from pulumi_policy.proxy import UnknownValueError

Path = tuple[str | int, ...]


def get(props: Any, *path: str | int, default: Any = None) -> Any:
    """The value at `path`, or `default` when any step is missing. Unknown values raise."""
    node = props
    for step in path:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return default
    return default if node is None else node


def is_set(props: Any, *path: str | int) -> bool:
    """Whether `path` holds a non-empty value. An unknown value counts as set: it will be
    filled in by `up` (e.g. a KMS key ARN of a key created in the same update)."""
    try:
        value = get(props, *path)
    except UnknownValueError:
        return True
    if isinstance(value, Sized):  # strings, and the engine's list/map proxies (which have no __eq__)
        return len(value) > 0
    return value is not None


def as_list(value: Any) -> list[Any]:
    """A property that may be one item or a list of them (IAM `Action`, `Resource`)."""
    if value is None:
        return []
    if isinstance(value, str | Mapping) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def json_document(value: Any) -> Any:
    """An IAM/pipeline document given as JSON text or as an already-decoded mapping."""
    if isinstance(value, str):
        return json.loads(value)
    return value


def number(value: Any) -> float:
    return float(value)


def fmt(value: float) -> str:
    """Numbers the way a user wrote them: `2`, not `2.0`."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def usd(value: float) -> str:
    return f"${value:,.2f}"


def stack_key(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::…` -> `<stack>::<project>`: what every resource of one
    stack shares."""
    head = urn.removeprefix("urn:pulumi:")
    parts = head.split("::")
    return "::".join(parts[:2])


def stack_name(urn: str) -> str:
    return urn.removeprefix("urn:pulumi:").split("::", 1)[0]


def type_chain(urn: str) -> list[str]:
    """The type tokens from the root component down to this resource (`parent$child` in the URN)."""
    parts = urn.removeprefix("urn:pulumi:").split("::")
    return parts[2].split("$") if len(parts) >= 4 else []


def tag_keys(value: Any) -> set[str]:
    """Keys of a tag map; unknown tag *values* do not matter for which keys exist."""
    if value is None:
        return set()
    if isinstance(value, str):  # provider config objects arrive JSON-encoded
        value = json.loads(value) if value else {}
    if isinstance(value, Mapping):
        return {str(k) for k in value}  # iterating keys never reads (unknown) values
    if isinstance(value, Sequence):  # [{key, value, propagateAtLaunch}], e.g. autoscaling groups
        return {str(item["key"]) for item in value if isinstance(item, Mapping) and "key" in item}
    return set()


def plain(value: Any) -> Any:
    """A deep copy with the engine's read-only proxies turned into dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(value[k]) for k in value}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [plain(v) for v in value]
    return value
