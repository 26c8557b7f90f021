"""Shingle sets and exact Jaccard: what near-duplicate detection compares (``near_duplicates.py`` explains the choice of word sets)."""

from __future__ import annotations

import re
import unicodedata
from collections import deque

from tunerail.data.records import LONG_TEXT, text_pieces

_WORD = re.compile(r"\w+", re.UNICODE)
DEFAULT_NGRAM = 1


def shingles(text: str, ngram: int = DEFAULT_NGRAM) -> set[str]:
    """Word n-grams of the normalised text (NFKC, casefold); shorter texts are one shingle.

    A text over ``LONG_TEXT`` characters is read piece by piece: a 50 MB row has millions of
    words but a small set of shingles, and the word list is never built.
    """
    if len(text) > LONG_TEXT:
        return _long_shingles(text, ngram)
    words = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())  # normalize_text minus spaces
    if ngram <= 1:
        return set(words) if words else {""}
    if len(words) <= ngram:
        return {" ".join(words)}
    return {" ".join(words[i : i + ngram]) for i in range(len(words) - ngram + 1)}


def _long_shingles(text: str, ngram: int, size: int = LONG_TEXT) -> set[str]:
    words = (w for piece in text_pieces(text, size) for w in _WORD.findall(unicodedata.normalize("NFKC", piece).casefold()))
    if ngram <= 1:
        return set(words) or {""}
    window: deque[str] = deque(maxlen=ngram)
    out: set[str] = set()
    count = 0
    for word in words:
        window.append(word)
        count += 1
        if count >= ngram:
            out.add(" ".join(window))
    return out if count > ngram else {" ".join(window)}


def jaccard(a: set[str], b: set[str]) -> float:
    """Exact Jaccard similarity of two shingle sets."""
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter) if (a or b) else 1.0
