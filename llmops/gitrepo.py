"""Git plumbing the core reads history with: one subprocess per call, errors as GitError.

Its own module so that what reads history (the registry's served-weights check, `llmops
plan`, the CI steps) shares one implementation without importing each other's commands.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path


class GitError(Exception):
    """A git command failed (unknown ref, not a repository)."""


def git(root: Path, *args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(["git", "-C", str(root), *args], input=stdin, capture_output=True, check=False)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"git {' '.join(args[:2])}: {message[-1] if message else 'failed'}")
    return result.stdout


def resolve(root: Path, ref: str) -> str:
    try:
        return git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").decode().strip()
    except GitError:
        raise GitError(f"unknown revision {ref!r} in {root} (a shallow clone needs `fetch-depth: 0`)") from None


def merge_base(root: Path, base: str, head: str) -> str:
    return git(root, "merge-base", base, head).decode().strip()


def read_blobs(root: Path, specs: Sequence[str]) -> dict[str, bytes | None]:
    """`rev:path` -> contents (None when missing), all through one `git cat-file --batch`."""
    if not specs:
        return {}
    unique = list(dict.fromkeys(specs))
    out = git(root, "cat-file", "--batch", stdin="".join(f"{s}\n" for s in unique).encode())
    blobs: dict[str, bytes | None] = {}
    pos = 0
    for spec in unique:
        end = out.index(b"\n", pos)
        header = out[pos:end].split(b" ")
        pos = end + 1
        if len(header) == 3 and header[1] == b"blob":
            size = int(header[2])
            blobs[spec] = out[pos : pos + size]
            pos += size + 1  # contents are followed by a newline
        else:  # "<spec> missing", or a tree/submodule where a file was expected
            blobs[spec] = None
            if len(header) == 3:
                pos += int(header[2]) + 1
    return blobs
