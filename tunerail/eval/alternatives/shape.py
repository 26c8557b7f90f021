"""The shape of the answers, read from the training rows: which family of alternatives fits.

| shape     | rule                                                                       | alternatives |
| labels    | task is classification                                                     | TF-IDF / MiniLM + logistic regression |
| spans     | extraction, and >= ``SPAN_SHARE`` of the reference values occur verbatim in their prompt | CRF, spaCy NER, MiniLM token classifier, nearest neighbour |
| fields    | extraction whose values are mostly not spans (normalised, inferred)        | nearest neighbour |
| records   | generation/chat whose prompts are records of fields (see ``delex.py``)  | nearest neighbour, delexicalised nearest neighbour |
| summary   | generation/chat whose median reference is <= ``SUMMARY_RATIO`` of its prompt's length | nearest neighbour, lead sentences, centroid sentence |
| text      | any other generation/chat                                                  | nearest neighbour |
"""

from __future__ import annotations

from statistics import median
from typing import Literal, Sequence

from tunerail.data.record_prompts import are_records
from tunerail.eval.alternatives.spans import field_values
from tunerail.metrics import answer_object

Shape = Literal["labels", "spans", "fields", "records", "summary", "text"]

# A span tagger can only find values written in the input. At 80 % it recovers most of the answer
# (WNUT-17: 99 % of the values are spans); below, values are mostly rewritten and a tagger would be
# scored on what it cannot produce.
SPAN_SHARE = 0.8
# A reference at most half its prompt's length is a condensation (DialogSum: median 0.2), where
# sentences copied from the input are the practitioner's first baseline; chat replies are longer.
SUMMARY_RATIO = 0.5


def values_are_spans(prompts: Sequence[str], answers: Sequence[str], threshold: float = SPAN_SHARE) -> bool:
    """True when at least ``threshold`` of the answers' non-empty JSON values occur verbatim in their prompt.

    Rows whose answer is not a JSON object, or has no value, do not count either way; with no value
    at all the answer is not span-shaped (False).

    Examples
    --------
    >>> values_are_spans(["Ann met Bo in Oslo"], ['{"person": ["Ann", "Bo"], "city": "Oslo"}'])
    True
    >>> values_are_spans(["Ann met Bo"], ['{"count": "two"}'])
    False
    """
    found, total = span_counts(prompts, answers)
    return total > 0 and found / total >= threshold


def span_counts(prompts: Sequence[str], answers: Sequence[str]) -> tuple[int, int]:
    """(values found verbatim in their prompt, all values) over the answers' JSON fields."""
    found = total = 0
    for prompt, answer in zip(prompts, answers):
        data = answer_object(answer) or {}
        for value in (v for key in data for v in field_values(data[key])):
            total += 1
            found += value in prompt
    return found, total


def is_summary_like(prompts: Sequence[str], answers: Sequence[str], ratio: float = SUMMARY_RATIO) -> bool:
    """True when the median reference is at most ``ratio`` of its prompt's length (characters)."""
    ratios = [len(a) / len(p) for p, a in zip(prompts, answers) if p]
    return bool(ratios) and median(ratios) <= ratio


def answer_shape(task: str, prompts: Sequence[str], answers: Sequence[str]) -> Shape:
    """The family of alternatives for ``task`` given the training rows' prompts and answers (see the module table)."""
    if task == "classification":
        return "labels"
    if task == "extraction":
        return "spans" if values_are_spans(prompts, answers) else "fields"
    if are_records(prompts):
        return "records"
    return "summary" if is_summary_like(prompts, answers) else "text"
