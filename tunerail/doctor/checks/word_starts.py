"""Whether an answer's last word is a whole word or the start of a longer one (a cut "He spent 80 doll").

A word model, not a rule per dataset: general word frequencies (wordfreq) mixed half and half with the
dataset's own word counts, so that its names and jargon count as words. A cut leaves the first letters of
a word, and the first letters of a common word ("doll" of "dollars", "Repor" of "Report") are used far more
often as the start of longer words than on their own.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate
from typing import Mapping

# How many times likelier the last word is the start of a longer word than a word of its own, at or above
# which it counts as cut. On the development sets (Alpaca 5000, GSM8K train, bench/doctor_unseen.py), any bar
# from 5 to 10 finds the same rows; 3 takes "18 students fail" and "cairn" for cuts, 20 misses two cuts.
START_ODDS = 8.0
# The same after a number, from the data's words after numbers only (counts, so a smaller bar: "30 section" where
# the data writes "sections" 10 times after a number and "section" never). On the same development sets any bar
# from 4 to 7 finds the same rows; 3 takes "= 96 fruit" for a cut.
AFTER_NUMBER_ODDS = 5.0
PRIOR_USES = 2.0  # how many uses after a number the general odds weigh, beside the data's own
_FLOOR = 1e-9  # a frequency for words no list has (wordfreq's own floor is about 1e-8)
WORDS = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)  # a word, with an inner apostrophe ("don't")


@dataclass(frozen=True)
class WordCounts:
    """Word frequencies with sums over every longer word that starts with a given prefix (sorted keys, running sums)."""

    freq: Mapping[str, float]
    unit: float = 0.0  # the frequency one use adds (data counts), 0 for a general list
    after_number: WordCounts | None = None  # data: the same for the words that follow a number ("3 boxes")
    keys: list[str] = field(default_factory=list)
    sums: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, freq: Mapping[str, float], unit: float = 0.0, after_number: WordCounts | None = None) -> WordCounts:
        keys = sorted(freq)
        return cls(freq, unit, after_number, keys, [0.0, *accumulate(freq[k] for k in keys)])

    def longer(self, prefix: str) -> float:
        """Summed frequency of the words that start with ``prefix`` and are longer."""
        lo, hi = bisect.bisect_left(self.keys, prefix), bisect.bisect_left(self.keys, prefix + "\U0010ffff")
        return self.sums[hi] - self.sums[lo] - self.freq.get(prefix, 0.0)


@lru_cache(maxsize=4)
def general_counts(language: str) -> WordCounts | None:
    """wordfreq's list for ``language`` (about 1 s to load, once), or None where it has none."""
    from wordfreq import get_frequency_dict

    try:
        return WordCounts.of(get_frequency_dict(language))
    except LookupError:
        return None


def general_zipf(word: str, language: str) -> float:
    """wordfreq's Zipf frequency of ``word`` (log10 uses per billion words), 0 where the language has no list."""
    counts = general_counts(language)
    freq = counts.freq.get(word, 0.0) if counts is not None else 0.0
    return math.log10(freq * 1e9) if freq > 0 else 0.0


def data_counts(texts: list[str]) -> WordCounts:
    """Per-token frequencies of the lower-cased words in ``texts``."""
    tokens: Counter[str] = Counter()
    after_number: Counter[str] = Counter()
    for text in texts:
        words = WORDS.findall(text[:4000].lower())
        tokens.update(words)
        after_number.update(w for n, w in zip(words, words[1:]) if n.isdigit() and n != "1" and w.isalpha())
    total = max(1, sum(tokens.values()))
    numbered = WordCounts.of({w: float(n) for w, n in after_number.items()}, 1.0)
    return WordCounts.of({w: n / total for w, n in tokens.items()}, 1 / total, numbered)


def start_odds(word: str, language: str, data: WordCounts | None = None, after_number: bool = False) -> float:
    """How many times likelier ``word`` (lower case) starts a longer word than stands alone.

    With ``data``, its own counts go half and half with the general list; the one use of ``word``
    being judged is left out (it is in the data too). ``after_number``: judged by the data's words
    after a number only ("= 30 section" where the data writes "30 sections", "60 m" for "60 minutes").
    """
    general = [c for c in (general_counts(language), data) if c is not None]
    if not general:
        return 0.0
    alone = sum(max(0.0, c.freq.get(word, 0.0) - c.unit) for c in general) / len(general)
    longer = sum(c.longer(word) for c in general) / len(general)
    numbered = data.after_number if after_number and data is not None else None
    if numbered is None:
        return (longer + _FLOOR) / (alone + _FLOOR)
    # the words after a number, with PRIOR_USES pseudo-uses spread as the general odds say (small data leans on them)
    prior = PRIOR_USES / (longer + alone + _FLOOR)
    return (numbered.longer(word) + prior * longer + _FLOOR) / (max(0.0, numbered.freq.get(word, 0.0) - 1) + prior * alone + _FLOOR)
