"""Records of a `text-documents` file, each with the line it starts on.

The format is the local trainer's (`llmops.local.train.documents`): documents
separated by one blank line; a document whose first line starts with a role
(`User:`, `Assistant:`, `System:`) is a conversation. Reading works on bytes, so a
record that is not UTF-8 is still a record, located, rather than a crash.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

ROLES = {"User": "U", "Assistant": "A", "System": "S"}
_ROLE_RE = re.compile(r"^(User|Assistant|System): ")
_TURN_RE = re.compile(r"^(User|Assistant|System): ", re.MULTILINE)


class Record(NamedTuple):  # a tuple: made ~2x faster than a frozen dataclass, and a file holds a million
    line: int  # 1-based line of the record's first line in its file
    raw: bytes
    text: str  # decoded; undecodable bytes become U+FFFD
    decode_error: str | None  # set when `raw` is not valid UTF-8

    @property
    def roles(self) -> str:
        """One letter per turn (U, A, S), '' for plain text: the shape the record schema checks."""
        out = []
        for line in self.text.split("\n"):
            m = _ROLE_RE.match(line)
            if m:
                out.append(ROLES[m.group(1)])
            elif not out:
                return ""
        return "".join(out)

    @property
    def kind(self) -> str:
        return "chat" if _ROLE_RE.match(self.text) else "text"

    def turns(self) -> list[tuple[str, str]]:
        """(role letter, content) per turn; continuation lines join the previous turn."""
        out: list[tuple[str, str]] = []
        for line in self.text.split("\n"):
            m = _ROLE_RE.match(line)
            if m:
                out.append((ROLES[m.group(1)], line[m.end() :]))
            elif out:
                out[-1] = (out[-1][0], out[-1][1] + "\n" + line)
        return out


def shape(text: str) -> tuple[str, str, int]:
    """(kind, roles, length of the shortest stripped turn) of a record's text, as the record schema
    checks it: `Record.kind`, `Record.roles` and the shortest of `Record.turns()` (the whole
    stripped text when it has none), from one regex split rather than three line loops."""
    # [text before the first role line, role, content, role, content, ...]; a content keeps the
    # newline before the next role line, which stripping drops as `turns()` does.
    parts = _TURN_RE.split(text)
    if len(parts) == 1:
        return "text", "", len(text.strip())
    shortest = min(map(len, map(str.strip, parts[2::2])))
    if parts[0]:  # plain text: later role lines still make turns, but no roles
        return "text", "", shortest
    return "chat", "".join(map(ROLES.__getitem__, parts[1::2])), shortest


def iter_records(data: bytes) -> Iterator[Record]:
    """Every blank-line separated block, empty ones included (an empty record is a defect)."""
    line = 1
    blocks = data.split(b"\n\n")
    last = len(blocks) - 1
    for i, block in enumerate(blocks):
        if i == last and not block.strip(b"\n"):
            break  # the file's final newline(s)
        body = block.rstrip(b"\n") if i == last else block
        lead = len(body) - len(body.lstrip(b"\n"))
        if lead:  # more than one blank line: an empty record between two documents
            yield Record(line=line, raw=b"", text="", decode_error=None)
            line, body = line + lead, body[lead:]
        try:
            text, error = body.decode("utf-8"), None
        except UnicodeDecodeError as exc:
            text = body.decode("utf-8", errors="replace")
            error = f"not UTF-8 (byte 0x{body[exc.start]:02x} at offset {exc.start})"
        yield Record(line=line, raw=body, text=text, decode_error=error)
        line += body.count(b"\n") + 2


def read_records(path: Path) -> list[Record]:
    return list(iter_records(path.read_bytes()))


def render(records: list[str]) -> str:
    """Documents back into the file format."""
    return "\n\n".join(records) + "\n" if records else ""
