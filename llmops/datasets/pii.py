"""Personal data found by presidio's predefined pattern recognizers, offline.

presidio's `AnalyzerEngine` needs a spaCy model (a download); its pattern
recognizers do not: each is a `PatternRecognizer` (regexes plus a validator such
as the Luhn checksum for credit cards, or `phonenumbers` for phones) whose
`analyze(text, entities, nlp_artifacts=None)` runs without any NLP engine. This
module builds those recognizers directly and runs them over large texts at once,
so a 100 MB dataset costs a few regex passes, not a million calls.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

# Entity name -> presidio recognizer class (all pattern based; none needs an NLP model).
_RECOGNIZERS = {
    "EMAIL_ADDRESS": "EmailRecognizer",
    "PHONE_NUMBER": "PhoneRecognizer",
    "CREDIT_CARD": "CreditCardRecognizer",
    "IP_ADDRESS": "IpRecognizer",
    "IBAN_CODE": "IbanRecognizer",
    "US_SSN": "UsSsnRecognizer",
    "URL": "UrlRecognizer",
    "CRYPTO": "CryptoRecognizer",
}


@dataclass(frozen=True)
class Finding:
    entity: str
    start: int
    end: int
    score: float


@functools.cache
def _recognizers(entities: tuple[str, ...]) -> list[Any]:
    # The e-mail recognizer checks domains with tldextract, which fetches the public suffix list on
    # first use; an empty URL list makes it use the snapshot it ships (offline, no retries).
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    with _without_optional_nlp():
        from presidio_analyzer import predefined_recognizers

    return [getattr(predefined_recognizers, _RECOGNIZERS[e])() for e in entities]


@contextlib.contextmanager
def _without_optional_nlp() -> Iterator[None]:
    """presidio_analyzer's package imports its NLP engines eagerly, among them transformers and, through
    it and thinc, torch (~4 s of a 5 s import); no pattern recognizer uses them, and both imports are
    optional there (an ImportError leaves that engine unavailable). So while the main thread imports
    presidio and neither is loaded yet, both look absent, and are importable again right after.
    Another thread might be importing them at that moment: there, presidio is imported as it is."""
    hidden = [m for m in ("transformers", "torch") if m not in sys.modules]
    if threading.current_thread() is not threading.main_thread() or "presidio_analyzer" in sys.modules:
        hidden = []
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, "") is None:
                del sys.modules[name]


# Every recognizer's match contains a cheap landmark: a large text is analysed only on the lines
# holding one, so presidio's patterns and validators (libphonenumber's matcher across regions
# costs ~50 µs per digit group) run on a small share of a dataset. A landmark is necessary for
# a match, never sufficient: presidio still decides. Possessive repeats (`*+`, `{0,2}+`) stop
# backtracking that cannot succeed (the separators are never digits): same matches, fewer steps.
_LANDMARKS = {
    "EMAIL_ADDRESS": re.compile(r"@"),
    "PHONE_NUMBER": re.compile(r"\d(?:[\s().\-/]*+\d){6}"),
    "CREDIT_CARD": re.compile(r"\d(?:[\s\-]*+\d){11}"),
    "IP_ADDRESS": re.compile(r"[\dA-Fa-f](?:(?<=\d)\.\d|(?<=[0-9A-Fa-f]):[0-9A-Fa-f]*+:)"),  # \d\.\d or hex:hex*:
    "IBAN_CODE": re.compile(r"[A-Z]{2}\d{2}"),
    "US_SSN": re.compile(r"\d{3}\D{0,2}+\d{2}\D{0,2}+\d{4}"),
    "URL": re.compile(r"\w\.\w"),
    "CRYPTO": re.compile(r"\b(?:[13][a-km-zA-HJ-NP-Z1-9]{25}|bc1)"),
}


def _spans(recognizer: Any, text: str) -> list[tuple[int, str]]:
    """(offset, text) of the lines worth analysing for this recognizer."""
    landmarks = [_LANDMARKS[e] for e in recognizer.supported_entities if e in _LANDMARKS]
    if not landmarks:
        return [(0, text)]
    out: dict[int, str] = {}
    for landmark in landmarks:
        end = -1
        for m in landmark.finditer(text):
            if m.start() < end:
                continue  # on a line already taken
            start = text.rfind("\n", 0, m.start()) + 1
            end = text.find("\n", m.end())
            end = len(text) if end < 0 else end
            out.setdefault(start, text[start:end])
    return sorted(out.items())


def find(text: str, entities: Sequence[str], min_score: float = 0.4) -> list[Finding]:
    """Every match of the recognizers for `entities` in `text`, by position."""
    found: list[Finding] = []
    for recognizer in _recognizers(tuple(sorted(entities))):
        wanted = [e for e in recognizer.supported_entities if e in entities]
        for offset, piece in _spans(recognizer, text):
            for r in recognizer.analyze(piece, wanted, nlp_artifacts=None):
                if r.score >= min_score:
                    found.append(Finding(r.entity_type, offset + r.start, offset + r.end, r.score))
    return sorted(set(found), key=lambda f: (f.start, -f.end))


def redact(text: str, entities: Sequence[str], min_score: float = 0.4) -> tuple[str, int]:
    """`text` with every finding replaced by `<ENTITY>`; also the number replaced."""
    findings = find(text, entities, min_score)
    out, pos, count = [], 0, 0
    for f in findings:
        if f.start < pos:  # overlaps the previous one (e.g. a URL inside an e-mail address)
            continue
        out.append(text[pos : f.start])
        out.append(f"<{f.entity}>")
        pos, count = f.end, count + 1
    out.append(text[pos:])
    return "".join(out), count


_SEP = "\n\x00\n"


def _chunks(texts: Iterable[str], chunk_chars: int) -> Iterator[tuple[int, list[int], str]]:
    """(index of the first record, each record's offset, the joined text) per chunk of about
    `chunk_chars`, records joined with a separator no recognizer matches across."""
    chunk: list[str] = []
    starts: list[int] = []
    first, size = 0, 0
    for index, text in enumerate(texts):
        if size > chunk_chars:
            yield first, starts, _SEP.join(chunk)
            chunk, starts, first, size = [], [], index, 0
        starts.append(size)
        chunk.append(text)
        size += len(text) + len(_SEP)
    if chunk:
        yield first, starts, _SEP.join(chunk)


def _scan(
    first: int, starts: list[int], text: str, entities: Sequence[str], min_score: float
) -> list[tuple[int, Finding]]:
    """(record index, finding relative to that record) for one chunk; runs in a worker process too."""
    out = []
    for f in find(text, entities, min_score):
        i = bisect.bisect_right(starts, f.start) - 1
        out.append((first + i, Finding(f.entity, f.start - starts[i], f.end - starts[i], f.score)))
    return out


def _by_record(results: Iterable[list[tuple[int, Finding]]]) -> dict[int, list[Finding]]:
    by_record: dict[int, list[Finding]] = {}
    for found in results:
        for index, finding in found:
            by_record.setdefault(index, []).append(finding)
    return by_record


def find_in_records(
    texts: Iterable[str], entities: Sequence[str], min_score: float = 0.4, chunk_chars: int = 1 << 20
) -> dict[int, list[Finding]]:
    """Findings per record index. Records are scanned joined into chunks of about `chunk_chars`
    (one pass per recognizer and chunk), with a separator no recognizer matches across."""
    return _by_record(_scan(*c, entities, min_score) for c in _chunks(texts, chunk_chars))


def submit_records(
    pool: Executor, texts: Iterable[str], entities: Sequence[str], min_score: float = 0.4, chunk_chars: int = 1 << 20
) -> Callable[[], dict[int, list[Finding]]]:
    """`find_in_records` with its chunks scanned by `pool` (a process pool: the scan is pure CPU)
    while the caller goes on; the returned function waits for them and gives the same result."""
    entities = list(entities)
    futures = [pool.submit(_scan, *c, entities, min_score) for c in _chunks(texts, chunk_chars)]
    return lambda: _by_record(f.result() for f in futures)
