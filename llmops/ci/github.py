"""GitHub Actions glue: step outputs and the job summary, written only when running there."""

from __future__ import annotations

import os


def github_output(**values: str) -> None:
    """Step outputs, when running in GitHub Actions."""
    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        for key, value in values.items():
            delimiter = f"llmops_{os.urandom(8).hex()}"
            out.write(f"{key}<<{delimiter}\n{value}\n{delimiter}\n")


def github_summary(markdown: str) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(markdown + "\n")
