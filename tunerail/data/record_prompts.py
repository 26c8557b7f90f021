"""Prompts that are records of fields (``name[The Eagle], food[French]``): read by the doctor and the eval alternatives.

A record-to-text row answers with text written from the record's values. Two shape facts follow that
both steps rely on: a different record is a different input (its answer differs for a reason), and a
description that states every value of its record is complete, whatever its last character.
"""

from __future__ import annotations

import json
import re
from typing import Sequence

# ``key[value]`` pairs separated by commas (the E2E form), or ``key: value`` pairs separated by ``|``, ``;`` or lines.
BRACKETS = re.compile(r"\s*([^\[\],]+?)\s*\[([^\]]*)\]\s*(?:,|$)")
COLON_SEP = re.compile(r"\s*(?:\||;|\n)\s*")
RECORD_SHARE = 0.9  # share of prompts that must parse as records for the ``records`` shape
_WORDS = re.compile(r"\w+")
# values that are flags (``familyFriendly[yes]``) or glue words ("less than £20"): a description states them in its own words
_NOT_STATED = frozenset({"yes", "no", "true", "false", "less", "more", "than", "the", "a", "an", "of", "and", "or", "out"})
STEM = 4  # "moderate" is stated by "moderately", "Italian" by "Italy": words that share their first 4 letters


def parse_record(text: str) -> list[tuple[str, str]] | None:
    """The ``(field, value)`` pairs of a record prompt, in order; None when ``text`` is not a record.

    Examples
    --------
    >>> parse_record("name[The Eagle], food[French]")
    [('name', 'The Eagle'), ('food', 'French')]
    >>> parse_record("name: The Eagle | food: French")
    [('name', 'The Eagle'), ('food', 'French')]
    >>> parse_record("Where is the Eagle?") is None
    True
    """
    text = text.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            return None
        if not isinstance(obj, dict) or not obj:
            return None
        return [(str(k), str(v)) for k, v in obj.items() if isinstance(v, (str, int, float, bool))] or None
    matches = list(BRACKETS.finditer(text))
    if matches and "".join(m.group(0) for m in matches).strip() == text:
        return [(m.group(1).strip(), m.group(2).strip()) for m in matches]
    parts = [p for p in COLON_SEP.split(text) if p]
    pairs = [p.split(":", 1) for p in parts]
    if len(parts) >= 2 and all(len(p) == 2 and p[0].strip() and len(p[0]) <= 40 for p in pairs):
        return [(k.strip(), v.strip()) for k, v in pairs]
    return None


def are_records(prompts: Sequence[str], share: float = RECORD_SHARE) -> bool:
    """True when at least ``share`` of the prompts parse as records (see :func:`parse_record`)."""
    return bool(prompts) and sum(parse_record(p) is not None for p in prompts) / len(prompts) >= share


def unstated_values(record: Sequence[tuple[str, str]], answer: str) -> list[tuple[str, str]]:
    """The ``(field, value)`` pairs none of whose words the answer writes (a word counts by its first ``STEM`` letters).

    Flags and glue words do not count ("yes" is written "kid friendly"), so a value made only of
    them is never unstated; a paraphrased value ("cheap" for ``priceRange[low]``) is.

    Examples
    --------
    >>> unstated_values([("name", "The Eagle"), ("food", "Italian"), ("area", "riverside")], "The Eagle serves Italy's food")
    [('area', 'riverside')]
    """
    stems = {w[:STEM] for w in _WORDS.findall(answer.lower())}
    out = []
    for key, value in record:
        words = [w for w in _WORDS.findall(value.lower()) if w not in _NOT_STATED]
        if words and not any(w[:STEM] in stems for w in words):
            out.append((key, value))
    return out
