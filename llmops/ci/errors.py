"""The one error every CI step raises."""


class CiError(Exception):
    """A step failed; the message says which and why."""
