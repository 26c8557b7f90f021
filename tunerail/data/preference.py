"""Preference pairs: (prompt, chosen, rejected), read from a user file or built from review votes.

The record type of ``train.method: dpo`` (``tunerail/train/preference.py``) and of the doctor's
preference checks (``tunerail/doctor/checks/preference.py``); the review step builds them from its
votes (``tunerail/review/pairs.py``). Shared code: it imports no step.

A user file is JSONL, JSON, CSV/TSV or Parquet with the columns ``prompt``, ``chosen`` and
``rejected`` (other columns are kept). It is read by tunerail's loaders, so an unparseable row, or a
missing or non-text field, becomes a ``Rejection`` naming the file, line and field (quarantined); a
file with no usable pair is a ``DataError`` (exit 2).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tunerail.data.layout import scalar_text
from tunerail.data.loaders import load_records
from tunerail.data.records import Record, Rejection, RowRef, normalize_text
from tunerail.errors import DataError, Problem

PAIR_COLUMNS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class PreferencePair:
    """One judged pair: ``chosen`` was preferred over ``rejected`` as the answer to ``prompt``.

    ``ref`` points at the row of a user file; ``votes`` names the review votes behind a pair built
    from a review (``annotator/unit``, the review store's keys): the lineage back to the people.
    """

    prompt: str
    chosen: str
    rejected: str
    ref: RowRef | None = None
    votes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        if self.votes:
            out["votes"] = list(self.votes)
        if self.ref is not None:
            out["_tunerail"] = self.ref.to_dict()
        return out


@dataclass
class PairSet:
    """Pairs with where they came from: ``counts`` (ties, contradictions...) and ``lineage`` go to train.json."""

    pairs: list[PreferencePair]
    source: str
    counts: dict[str, int] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)


def pair_key(prompt: str, answer_a: str, answer_b: str) -> tuple[str, str, str]:
    """Normalised (prompt, a, b) as duplicate, identity and contradiction checks compare them."""
    return normalize_text(prompt), normalize_text(answer_a), normalize_text(answer_b)


def pair_from_record(record: Record) -> PreferencePair | Rejection:
    """A prompt/completion record whose ``rejected`` column holds text; else the row's rejection."""
    value = record.fields.get("rejected")
    text = scalar_text(value) if value is not None else None
    if text is None:
        what = "is missing" if value is None else f"must be text (found {type(value).__name__})"
        return Rejection(record.ref, f"field 'rejected' {what}", field="rejected", data=record.fields, check="format.missing_field")
    return PreferencePair(record.prompt, record.completion, text, ref=record.ref)


def load_pairs_file(path: str | Path) -> PairSet:
    """Read a ``prompt, chosen, rejected`` file; bad rows are rejected with file, line and field.

    Raises
    ------
    DataError
        The file is missing or unreadable, a column is absent from every row, or no row is a usable pair.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(Problem("preference file not found", file=str(path), fix="pass a JSONL/CSV file with prompt, chosen, rejected"))
    columns = {"prompt": "prompt", "completion": "chosen"}
    records, rejections, _ = load_records(path, "prompt_completion", columns)
    pairs: list[PreferencePair] = []
    for record in records:
        item = pair_from_record(record)
        (pairs if isinstance(item, PreferencePair) else rejections).append(item)  # type: ignore[arg-type]
    if not pairs:
        first = min(rejections, key=lambda r: r.ref) if rejections else None
        raise DataError(
            Problem(
                "no usable preference pair" + (f" (first problem: {first.reason})" if first else ""),
                file=str(path),
                line=first.ref.line if first else None,
                field=first.field if first else None,
                fix="every row needs text in prompt, chosen and rejected",
            )
        )
    rejections.sort(key=lambda r: r.ref)
    counts = {"rows": len(pairs) + len(rejections), "pairs": len(pairs), "rejected_rows": len(rejections)}
    return PairSet(pairs, str(path), counts=counts, rejections=rejections)


def split_by_prompt(pairs: Sequence[PreferencePair], share: float, seed: int) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(train, validation): whole prompts held out, seeded, so no prompt is on both sides.

    At least one prompt goes to each side when there are two or more; order within a side is the input order.
    """
    prompts = sorted({normalize_text(p.prompt) for p in pairs})
    random.Random(f"preference-split-{seed}").shuffle(prompts)
    n_val = min(max(1, round(share * len(prompts))), len(prompts) - 1) if len(prompts) >= 2 else 0
    held = set(prompts[:n_val])
    train = [p for p in pairs if normalize_text(p.prompt) not in held]
    val = [p for p in pairs if normalize_text(p.prompt) in held]
    return train, val
