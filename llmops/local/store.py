"""The local content-addressed artifact store.

Layout under the store root (`<repo>/.state/artifacts`, shared by every local
stack of a checkout):

    <sha256>/        one artifact, named by the hash of its files; never modified after
    .index/<key>     training-inputs key -> artifact sha256 (the training cache)
    .tmp/            work folders, on the same filesystem so `put` is one rename

An artifact's sha256 covers every file's relative path and bytes, in sorted
order, so the same files always get the same name wherever they were written.
Nothing here deletes an artifact: they are data, and `make clean` removes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

STORE_DIR = ".state/artifacts"  # relative to the repository root; git-ignored
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


class ArtifactMissingError(KeyError):
    """The store holds no artifact with this sha256."""


def tree_sha256(root: Path, ignore: tuple[str, ...] = ()) -> str:
    """sha256 over (relative path, size, bytes) of every file under `root`, sorted by path
    (skipping paths that pass through a folder named in `ignore`)."""
    files: list[tuple[str, Path]] = []
    for path in root.rglob("*"):
        if ignore and any(part in ignore for part in path.relative_to(root).parts):
            continue
        if path.is_symlink():
            raise ValueError(f"{path}: links are not allowed in an artifact")
        if path.is_file():
            files.append((path.relative_to(root).as_posix(), path))
    digest = hashlib.sha256()
    for rel, path in sorted(files):
        # Path and size delimit each file, so no two different trees hash alike by concatenation.
        digest.update(f"{rel}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _freeze(root: Path) -> None:
    """Make files read-only: an artifact is never modified once stored (folders stay
    writable so `make clean` can still remove the store)."""
    for path in root.rglob("*"):
        if path.is_file():
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


class ArtifactStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def _tmp(self) -> Path:
        return self.root / ".tmp"

    @property
    def _index(self) -> Path:
        return self.root / ".index"

    def path(self, sha: str) -> Path:
        if not SHA256_RE.match(sha):
            raise ValueError(f"not a sha256: {sha!r}")
        return self.root / sha

    def uri(self, sha: str) -> str:
        return self.path(sha).resolve().as_uri()

    def exists(self, sha: str) -> bool:
        return self.path(sha).is_dir()

    def get(self, sha: str) -> Path:
        path = self.path(sha)
        if not path.is_dir():
            raise ArtifactMissingError(f"no artifact {sha} in {self.root}")
        return path

    def verify(self, sha: str) -> bool:
        """Whether the stored files still hash to their name."""
        return tree_sha256(self.get(sha)) == sha

    @contextlib.contextmanager
    def workdir(self, prefix: str = "work-") -> Iterator[Path]:
        """A fresh folder beside the artifacts; removed on exit unless `put` moved it in."""
        self._tmp.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=self._tmp))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def put(self, src: Path) -> str:
        """Move the folder `src` into the store under its content hash and return the hash.

        The move is one rename of a complete folder, so readers never see a partial
        artifact. If the artifact is already stored, `src` is discarded.
        """
        src = Path(src)
        sha = tree_sha256(src)
        dest = self.path(sha)
        if dest.is_dir():
            shutil.rmtree(src, ignore_errors=True)
            return sha
        self._tmp.mkdir(parents=True, exist_ok=True)
        staged = src
        if os.stat(src).st_dev != os.stat(self._tmp).st_dev:
            # A rename cannot cross filesystems: copy next to the store first.
            staged = Path(tempfile.mkdtemp(prefix="put-", dir=self._tmp)) / "artifact"
            shutil.copytree(src, staged)
        _freeze(staged)
        try:
            os.rename(staged, dest)
        except OSError:
            # Another writer stored the same content first: same bytes, keep theirs.
            if not dest.is_dir():
                raise
            shutil.rmtree(staged, ignore_errors=True)
        if staged != src:
            shutil.rmtree(src, ignore_errors=True)
            shutil.rmtree(staged.parent, ignore_errors=True)
        return sha

    # ------------------------------------------------------------------ cache by inputs

    def remember(self, key: str, sha: str) -> None:
        """Record that inputs `key` produced artifact `sha` (atomic replace)."""
        self.get(sha)
        self._index.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}-", dir=self._index)
        with os.fdopen(fd, "w") as fh:
            fh.write(sha + "\n")
        os.replace(tmp, self._index / key)

    def lookup(self, key: str) -> str | None:
        """The artifact that inputs `key` produced, if it is still in the store."""
        if not SHA256_RE.match(key):
            raise ValueError(f"not a sha256 key: {key!r}")
        try:
            sha = (self._index / key).read_text().strip()
        except FileNotFoundError:
            return None
        return sha if SHA256_RE.match(sha) and self.exists(sha) else None
