"""Keywords-to-text prompts and the keywords an answer uses: one rule for the doctor and the eval.

A prompt that is only a short list of words ("fold, paper, sit, table": CommonGen, ad copy from
keywords) asks for a text that uses every keyword in some word form. The doctor reads it to judge a
cut-off answer (one that says every keyword is complete without a final stop); the eval reads it to
choose, among the beam's candidates, the one that uses the most keywords (``eval.decoding``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

_KEYWORD = re.compile(r"^[^\W\d_][\w'-]*(?:\s[^\W\d_][\w'-]*){0,2}$")  # a word or a short phrase, no sentence punctuation
_WORD = re.compile(r"[^\W\d_]+")
KEYWORD_SHARE = 0.9  # prompts that must be keyword lists for a data set to count as keywords-to-text


def keyword_prompt(prompt: str) -> list[str] | None:
    """The keywords of a keywords-to-text prompt ("coat, sidewalk, walk, wear"), or None.

    Two to twelve comma- or semicolon-separated words or short phrases and nothing else.
    """
    parts = [p.strip() for p in re.split(r"[,;]", prompt.strip())]
    if not 2 <= len(parts) <= 12 or not all(_KEYWORD.match(p) for p in parts):
        return None
    return [p.lower() for p in parts]


def keyword_prompts(prompts: Sequence[str], share: float = KEYWORD_SHARE) -> list[list[str]] | None:
    """Each prompt's keywords when at least ``share`` of the prompts are keyword lists (others get []), else None."""
    keywords = [keyword_prompt(p) for p in prompts]
    if not prompts or sum(k is not None for k in keywords) < share * len(prompts):
        return None
    return [k or [] for k in keywords]


@lru_cache(maxsize=4096)
def _forms(word: str) -> frozenset[str]:
    """Every inflection of a word (lemminflect: "throw" -> threw, thrown, throws...), the word itself included."""
    from lemminflect import getAllInflections

    out = {word}
    for values in getAllInflections(word).values():
        out.update(v.lower() for v in values)
    return frozenset(out)


@lru_cache(maxsize=65536)
def same_word(keyword: str, word: str) -> bool:
    """``word`` is ``keyword`` in some word form: an inflection of it ("sit" / "sat", "sweep" / "swept", "fold" /
    "folding") or a word whose lemma it is (lemminflect both ways, as CommonGen's own coverage counts lemmas)."""
    from lemminflect import getAllLemmas

    return word in _forms(keyword) or any(keyword in lemmas for lemmas in getAllLemmas(word).values())


def keyword_coverage(keywords: Sequence[str], answer: str) -> float:
    """Share of the keywords the answer uses in some word form (a phrase counts when any of its words is used); 1.0 for none."""
    if not keywords:
        return 1.0
    words = _WORD.findall(answer.lower())
    return sum(any(same_word(part, w) for part in kw.split() for w in words) for kw in keywords) / len(keywords)


def uses_every_keyword(keywords: Sequence[str], answer: str) -> bool:
    """Whether the answer uses every keyword in some word form: then it said all it was asked to, stop or no stop."""
    return keyword_coverage(keywords, answer) == 1.0


def most_covering(candidates: Sequence[str], keywords: Sequence[str]) -> str:
    """The candidate that uses the most keywords; the earlier (likelier) one on a tie. Candidates come best first."""
    if not candidates:
        return ""
    return max(enumerate(candidates), key=lambda ic: (keyword_coverage(keywords, ic[1]), -ic[0]))[1]
