"""Word n-grams of many texts at once, as 64-bit hashes in numpy arrays.

The contamination check compares every word n-gram of the eval splits with every
one of the train split (tens of millions on a 100 MB dataset). A set of Python
tuples per record made this most of the validation's time; here a chunk of records
is split into words at once and its n-grams are hashed by vectorised arithmetic
over the words' hashes.

A text's n-grams are its word n-grams after casefolding (words: `\\w+`); a text of
fewer than n words (but at least one) has one gram, all its words. The hash of a
gram folds in its length, so a short text's gram never equals an n-gram.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import numpy as np

_TOKEN_RE = re.compile(r"\w+|\n\n")
_SEP = "\n\n"  # between texts; a record never holds a blank line, so never inside one
_MUL = np.uint64(0x9E3779B97F4A7C15)
_MASK = (1 << 64) - 1


def _seed(length: int) -> int:
    return (length * 0xC2B2AE3D27D4EB4F + 0x165667B19E3779F9) & _MASK


def _combine(hashes: Sequence[int]) -> int:
    """The gram hash of word hashes, in Python ints; the same arithmetic as the vectorised path."""
    h = _seed(len(hashes))
    for w in hashes:
        h = (h * int(_MUL) + (w & _MASK)) & _MASK
    return h


# ASCII text: `\w` is [0-9A-Za-z_], so words are what is left between the other characters once
# those become spaces (str.translate, str.replace and str.split run in C, ~2x faster than findall).
_ASCII_NON_WORD = {c: " " for c in range(128) if not re.fullmatch(r"\w", chr(c)) and chr(c) != "\n"}


def _tokens(joined: str) -> tuple[list[str], str]:
    """The words of `joined` and its separators, in order, as `_TOKEN_RE.findall(joined)` finds
    them; also the token a separator is (a NUL, once every NUL of the text has become a space)."""
    if not joined.isascii():
        return _TOKEN_RE.findall(joined), _SEP
    spaced = joined.translate(_ASCII_NON_WORD).replace(_SEP, " \x00 ").replace("\n", " ")
    return spaced.split(), "\x00"


def _word_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The hash of every word of all texts and, per word, the index of its text."""
    joined = _SEP.join(t.strip() for t in texts).casefold()
    tokens, sep = _tokens(joined)
    hashes = np.fromiter(map(hash, tokens), dtype=np.int64, count=len(tokens)).view(np.uint64)
    is_sep = hashes == np.int64(hash(sep)).view(np.uint64)
    for i in np.flatnonzero(is_sep).tolist():  # a word whose hash equals the separator's is still a word
        is_sep[i] = tokens[i] == sep
    if int(is_sep.sum()) == max(len(texts) - 1, 0):
        return hashes[~is_sep], np.cumsum(is_sep)[~is_sep]
    # A text held a blank line (not a record of a file): word the texts one by one.
    per_text = [[hash(w) for w in _TOKEN_RE.findall(t.casefold()) if w != _SEP] for t in texts]
    flat = [w for ws in per_text for w in ws]
    owner = np.repeat(np.arange(len(texts)), [len(ws) for ws in per_text])
    return np.array(flat, dtype=np.int64).view(np.uint64), owner


def gram_hashes(texts: Sequence[str], n: int, chunk: int = 20_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(text index, gram hash) arrays, one pair per chunk of texts, in text order."""
    for base in range(0, len(texts), chunk):
        part = texts[base : base + chunk]
        hashes, owner = _word_hashes(part)
        counts = np.bincount(owner, minlength=len(part)) if len(owner) else np.zeros(len(part), np.int64)
        idx_parts, hash_parts = [], []
        if len(hashes) >= n:
            m = len(hashes) - n + 1
            inside = owner[:m] == owner[n - 1 :]  # the gram does not cross into the next text
            with np.errstate(over="ignore"):
                h = np.full(m, _seed(n), dtype=np.uint64)
                for k in range(n):
                    h = h * _MUL + hashes[k : k + m]
            idx_parts.append(owner[:m][inside])
            hash_parts.append(h[inside])
        short = np.flatnonzero((counts > 0) & (counts < n))
        if len(short):
            starts = np.concatenate(([0], np.cumsum(counts)))
            idx_parts.append(short)
            hash_parts.append(
                np.array(
                    [_combine(hashes[starts[i] : starts[i + 1]].tolist()) for i in short.tolist()], dtype=np.uint64
                )
            )
        if idx_parts:
            idx, hs = np.concatenate(idx_parts), np.concatenate(hash_parts)
            order = np.argsort(idx, kind="stable")
            yield idx[order] + base, hs[order]
