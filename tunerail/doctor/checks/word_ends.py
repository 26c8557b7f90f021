"""Whether an answer's last word can end a sentence or a line: English's closed list, and the data's own counts.

A cut at a word boundary leaves a word that seldom ends anything ("... use this value to find",
"I like", "-Develop"). English's function words are listed (``DANGLING``); the rest is learned per
dataset: how often each word is the last of a sentence or a line among all its uses, so that it
works for any language and keeps the words a dataset does end with (units, labels, names).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Mapping, Sequence

from tunerail.doctor.checks.word_starts import WORDS

# Words that cannot end an English sentence: a last "and", "the", "would" was cut.
DANGLING = frozenset(
    {
        "and", "or", "but", "the", "a", "an", "of", "to", "in", "for", "with", "on", "at", "by", "from", "that", "which", "is",
        "are", "was", "were", "as", "this", "their", "his", "her", "its", "our", "your", "my", "because", "such", "than", "into",
        "these", "those", "very", "will", "can", "per", "each", "if", "so", "then", "when", "while", "has", "had", "have", "be",
        "not", "would", "should", "could",
    }
)  # fmt: skip
# A word is judged by the data's counts only with this many uses: fewer say too little about where it goes.
MIN_USES = 20
# The share of its uses a word ends a sentence or a line with ((ends + 1) / (uses + 2)), below which a last one was
# cut. On the development sets (bench/doctor_unseen.py, 5 plantings): Alpaca finds 11 more cuts and flags no clean
# row, GSM8K train 4 more and 5 clean rows, examples/e2e none and none; 0.02 flags clean nouns ("speed", "ratio").
END_SHARE = 0.01
# a word followed by a sentence end, a line end or the end of the text
_ENDING = re.compile(r"([^\W_]+(?:'[^\W_]+)?)(?=[ \t]*(?:[.!?;]|\n|$))")
_LINE_START = re.compile(r"(?:^|\n)[ \t]*(?:[-*•]|\d+[.)])?[ \t]*$")


def end_shares(texts: Sequence[str]) -> dict[str, float]:
    """For each lower-cased word used ``MIN_USES`` times or more in ``texts`` (each read up to 4,000 characters):
    the smoothed share of its uses that end a sentence or a line."""
    uses: Counter[str] = Counter()
    ends: Counter[str] = Counter()
    for text in texts:
        text = text[:4000]
        uses.update(w.lower() for w in WORDS.findall(text))
        ends.update(w.lower() for w in _ENDING.findall(text))
    return {w: (ends[w] + 1) / (n + 2) for w, n in uses.items() if n >= MIN_USES}


def rarely_ends(text: str, shares: Mapping[str, float]) -> bool:
    """``text`` stops on a word the data almost never ends a sentence or a line with.

    Judged: a lower-case word, or a capitalised one that starts its line (a list item's "-Develop"),
    after at least one other word; not a list's last item or a label's value (after "," or ":"),
    which ends wherever the list does ("held, shouted, ran"; "Preposition: on").
    """
    words = WORDS.findall(text)
    if len(words) < 2 or not text.endswith(words[-1]):
        return False
    word, before = words[-1], text[: -len(words[-1])]
    if not (word.islower() or (word[:1].isupper() and word[1:].islower() and _LINE_START.search(before))):
        return False
    return not before.rstrip().endswith((",", ":")) and shares.get(word.lower(), 1.0) < END_SHARE
