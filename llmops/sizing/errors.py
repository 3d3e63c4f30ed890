"""The one error sizing raises, with the registry key it is best reported at."""

from __future__ import annotations


class SizingError(ValueError):
    """Nothing in the catalog fits, an explicit instance is too small, or a config cannot be sized.

    `key` names the serving setting to change ("config", "dtype", "max_context" or "instance"),
    so `llmops registry validate` can point at that line.
    """

    def __init__(self, message: str, *, key: str = "instance"):
        super().__init__(message)
        self.key = key
