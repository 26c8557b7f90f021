"""Pure functions over per-example results; no model, no I/O except the export/import pair."""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tunerail.errors import Problem, TunerailError
from tunerail.io import write_private

RATING_SCALE = "1-5 (5 = as good as the reference); leave blank to skip"


@dataclass
class ReviewRow:
    """One test example as a reviewer sees it; ``index``/``line`` point back to the test file."""

    index: int
    line: int
    input: str
    reference: str
    base: str
    tuned: str
    base_score: float
    tuned_score: float
    label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def side_by_side(rows: Sequence[ReviewRow], n: int, seed: int = 13) -> list[ReviewRow]:
    """A seeded random sample in file order (a reviewer should not only see failures)."""
    if n >= len(rows):
        return list(rows)
    picked = random.Random(seed).sample(range(len(rows)), n)
    return [rows[i] for i in sorted(picked)]


def worst_cases(rows: Sequence[ReviewRow], n: int = 10) -> list[ReviewRow]:
    """Lowest tuned score first; among equals, regressions (base better) first, then longest input."""
    return sorted(rows, key=lambda r: (r.tuned_score, -(r.base_score - r.tuned_score), -len(r.input)))[:n]


def slices(rows: Sequence[ReviewRow], *, buckets: int = 4) -> dict[str, list[dict[str, Any]]]:
    """Mean base/tuned score per class and per input-length quantile bucket (in characters)."""
    out: dict[str, list[dict[str, Any]]] = {"by_class": [], "by_length": []}
    if not rows:
        return out
    labels = sorted({r.label for r in rows if r.label is not None})
    for lab in labels:
        sel = [r for r in rows if r.label == lab]
        out["by_class"].append(_slice(lab, sel))
    lengths = np.array([len(r.input) for r in rows])
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, buckets + 1)).round().astype(int))
    for lo, hi in zip(edges[:-1], edges[1:]):
        last = hi == edges[-1]
        sel = [r for r, n in zip(rows, lengths) if lo <= n and (n <= hi if last else n < hi)]
        if sel:
            out["by_length"].append(_slice(f"{lo}-{hi} chars", sel))
    return out


def _slice(name: str, sel: Sequence[ReviewRow]) -> dict[str, Any]:
    base = float(np.mean([r.base_score for r in sel]))
    tuned = float(np.mean([r.tuned_score for r in sel]))
    return {"slice": name, "n": len(sel), "base": base, "tuned": tuned, "delta": tuned - base}


def export_for_review(rows: Sequence[ReviewRow], path: str | Path) -> Path:
    """Write a CSV (or JSONL by suffix) with blank ``rating`` and ``comment`` columns for raters.

    The answers are shown as "A"/"B" in a seeded random order per row, so the rater does not
    know which is the fine-tuned model. The answer key (which system is A) goes to a separate
    file, ``key_path(path)`` (``review.key.csv`` beside ``review.csv``): hand raters the first
    file only; ``import_ratings`` reads both.
    """
    rng = random.Random(7)
    records, keys = [], []
    for r in rows:
        tuned_first = rng.random() < 0.5
        records.append(
            {
                "index": r.index,
                "line": r.line,
                "input": r.input,
                "reference": r.reference,
                "answer_a": r.tuned if tuned_first else r.base,
                "answer_b": r.base if tuned_first else r.tuned,
                "rating_a": "",
                "rating_b": "",
                "comment": "",
                "scale": RATING_SCALE,
            }
        )
        keys.append({"index": r.index, "line": r.line, "a_is": "tuned" if tuned_first else "base"})
    path = Path(path)
    _write_table(key_path(path), keys, ["index", "line", "a_is"])
    return _write_table(path, records, list(records[0]) if records else ["index"])


def key_path(path: str | Path) -> Path:
    """Where the answer key of a review export lives: ``review.csv`` -> ``review.key.csv``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.key{path.suffix}")


def _write_table(path: Path, records: list[dict[str, Any]], fields: list[str]) -> Path:
    if path.suffix == ".jsonl":
        return write_private(path, "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(records)
    return write_private(path, buf.getvalue())


def _review_text(path: Path) -> str:
    """The file's text: UTF-8 (with or without BOM), else cp1252, what Excel on Windows saves a CSV as."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise TunerailError(
                Problem(
                    f"is neither UTF-8 nor cp1252 text ({exc.reason} at byte {exc.start})", file=str(path), fix="save the file as UTF-8 CSV"
                )
            ) from None


def _read_review_rows(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[Problem]]:
    """(line, row) pairs and one problem per line that is not a JSON object (JSONL) — every bad line named."""
    text = _review_text(path)
    problems: list[Problem] = []
    if path.suffix != ".jsonl":
        return [(i + 2, rec) for i, rec in enumerate(csv.DictReader(io.StringIO(text, newline="")))], problems
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            problems.append(
                Problem(
                    f"not valid JSON ({exc})",
                    file=str(path),
                    line=number,
                    fix="restore the line from the exported file; only edit the rating and comment values",
                )
            )
            continue
        if not isinstance(rec, dict):
            problems.append(Problem("not a JSON object", file=str(path), line=number))
            continue
        rows.append((number, rec))
    return rows, problems


def import_ratings(path: str | Path, key: str | Path | None = None) -> dict[str, Any]:
    """Read a filled review file back: mean rating per model, rows rated, and bad cells by line.

    ``key`` is the answer-key file written by ``export_for_review`` (default: ``key_path(path)``).
    Files exported before the key moved out carry an ``a_is`` column, which is still read.
    """
    path = Path(path)
    if not path.exists():
        raise TunerailError(Problem("review file not found", file=str(path), fix="pass the file written by the eval report"))
    rows, problems = _read_review_rows(path)
    keys = _answer_key(path, key, rows)
    scores: dict[str, list[float]] = {"base": [], "tuned": []}
    rated = 0
    for line, rec in rows:
        a_is = keys.get(str(rec.get("index", "")).strip()) if keys is not None else rec.get("a_is")
        if a_is not in ("base", "tuned"):
            problems.append(
                Problem(
                    "row has no answer key (a_is must be 'base' or 'tuned')",
                    file=str(path),
                    line=line,
                    field="index" if keys is not None else "a_is",
                    fix="do not edit the index column; keep the key file written with the export",
                )
            )
            continue
        b_is = "base" if a_is == "tuned" else "tuned"
        any_rating = False
        for col, model in (("rating_a", a_is), ("rating_b", b_is)):
            value = str(rec.get(col, "") or "").strip()
            if not value:
                continue
            try:
                score = float(value)
            except ValueError:
                score = -1
            if not 1 <= score <= 5:
                problems.append(
                    Problem(
                        f"rating {value!r} is not a number from 1 to 5",
                        file=str(path),
                        line=line,
                        field=col,
                        fix="use 1-5 or leave the cell blank",
                    )
                )
                continue
            scores[model].append(score)
            any_rating = True
        rated += any_rating
    if problems:
        raise TunerailError(problems)
    return {
        "rows": len(rows),
        "rated": rated,
        "mean_rating": {m: (float(np.mean(v)) if v else None) for m, v in scores.items()},
        "ratings": {m: len(v) for m, v in scores.items()},
    }


def _answer_key(path: Path, key: str | Path | None, rows: list[tuple[int, dict[str, Any]]]) -> dict[str, str] | None:
    """index -> "base"/"tuned" from the key file; None for an old export with an ``a_is`` column."""
    key = Path(key) if key is not None else key_path(path)
    if not key.exists():
        if rows and all("a_is" in rec for _, rec in rows):
            return None
        raise TunerailError(
            Problem("answer key not found", file=str(key), fix="pass --key with the .key file written beside the review export")
        )
    out: dict[str, str] = {}
    key_rows, _ = _read_review_rows(key)
    for _, rec in key_rows:
        out[str(rec.get("index", "")).strip()] = str(rec.get("a_is", "")).strip()
    return out


ITEMS_FILE = "review_items.jsonl"


def write_items(rows: Sequence[ReviewRow], path: str | Path, systems: dict[str, Sequence[str]] | None = None) -> Path:
    """Write every test row's review material for `tunerail review serve` (one JSON object a line).

    Each line: ``index``, ``line``, ``input``, ``reference``, ``label`` and ``outputs`` (system
    name -> answer: ``base`` and ``tuned``, plus any extra ``systems`` such as a few-shot base).
    The browser never receives this file; the app shows one item at a time, blinded.
    """
    lines = []
    for i, r in enumerate(rows):
        outputs = {"base": r.base, "tuned": r.tuned}
        for name, texts in (systems or {}).items():
            outputs[name] = texts[i]
        lines.append(
            json.dumps(
                {"index": r.index, "line": r.line, "input": r.input, "reference": r.reference, "label": r.label, "outputs": outputs},
                ensure_ascii=False,
            )
            + "\n"
        )
    return write_private(path, "".join(lines))
