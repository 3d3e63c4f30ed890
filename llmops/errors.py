"""Errors shared by the core's commands."""


class UserError(Exception):
    """A failure the user can act on; the CLI prints it as one line and exits 1."""
