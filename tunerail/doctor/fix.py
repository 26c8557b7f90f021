"""``--fix``: the safe repairs, as a plan first (what is kept, what is quarantined and why).

Rules, applied in this order so that counts always reconcile (rows in = kept + quarantined):

1. rows the loader rejected (unparseable, missing or mistyped fields) are quarantined;
2. every finding whose ``details["fix_action"]`` is ``"drop"`` quarantines all its rows
   (empty and placeholder answers);
3. every finding whose action is ``"drop_except_first"`` (exact duplicates; near-duplicate and
   any other clusters that declare it) keeps its first member still kept and quarantines the rest;
4. with ``mask_pii``, personal data and secrets in the kept rows are replaced by placeholders.

A row is quarantined once, with the first reason that applies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from tunerail.data.records import Record, Rejection
from tunerail.data.records import RowRef
from tunerail.findings import Finding
from tunerail.pii import mask

# Clusters that are safe to thin out even when their check does not say so in ``details``.
DEFAULT_ACTIONS = {"duplicates.exact": "drop_except_first", "duplicates.near": "drop_except_first"}


@dataclass
class QuarantinedRow:
    ref: RowRef
    check: str
    code: str
    reason: str
    cluster: str | None = None
    kept: RowRef | None = None  # the cluster's representative that stays in clean.jsonl
    data: dict[str, Any] | None = None  # the original columns (None when the line did not parse)
    raw: str | None = None  # the raw line when it did not parse

    def to_json(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "index": self.ref.index,
            "line": self.ref.line,
            "file": self.ref.file,
            "check": self.check,
            "code": self.code,
            "reason": self.reason,
        }
        if self.cluster is not None:
            meta["cluster"] = self.cluster
        if self.kept is not None:
            meta["kept"] = {"index": self.kept.index, "line": self.kept.line}
        if self.raw is not None:
            meta["raw"] = self.raw
        out = dict(self.data or {})
        out["_tunerail"] = meta
        return out


@dataclass
class FixPlan:
    rows_in: int
    kept: list[Record]
    quarantined: list[QuarantinedRow]
    masked_rows: int = 0
    masked: dict[int, dict[str, Any]] = field(default_factory=dict)  # index -> fields after masking

    def summary(self) -> dict[str, Any]:
        by_check: dict[str, int] = {}
        for q in self.quarantined:
            by_check[q.check] = by_check.get(q.check, 0) + 1
        return {
            "rows_in": self.rows_in,
            "kept": len(self.kept),
            "quarantined": len(self.quarantined),
            "quarantined_by_check": dict(sorted(by_check.items())),
            "masked_rows": self.masked_rows,
        }

    def clean_rows(self) -> Iterable[dict[str, Any]]:
        for rec in self.kept:
            row = rec.to_json()
            if rec.index in self.masked:
                row.update(self.masked[rec.index])
            yield row


def plan_fix(
    records: list[Record],
    rejections: list[Rejection],
    findings: list[Finding],
    *,
    mask_pii: bool = False,
    phone_region: str = "US",
    raw_lines: dict[int, str] | None = None,
) -> FixPlan:
    """Decide which rows stay; pure (writes nothing)."""
    from tunerail.doctor.checks.format import rejection_kind
    from tunerail.doctor.registry import all_checks

    codes = {c.name: c.code for c in all_checks()}
    quarantined: dict[int, QuarantinedRow] = {}
    for rej in rejections:
        kind = rejection_kind(rej)
        data = rej.data if isinstance(rej.data, dict) else None
        quarantined[rej.ref.index] = QuarantinedRow(
            rej.ref, kind, codes.get(kind, ""), rej.reason, data=data, raw=rej.raw or (raw_lines or {}).get(rej.ref.line)
        )
    by_index = {rec.index: rec for rec in records}

    def action(f: Finding) -> str | None:
        return f.details.get("fix_action") or DEFAULT_ACTIONS.get(f.check)

    for f in findings:
        if action(f) == "drop":
            for ref in f.rows:
                if ref.index in by_index and ref.index not in quarantined:
                    quarantined[ref.index] = QuarantinedRow(ref, f.check, f.code, f.message, f.cluster, data=by_index[ref.index].fields)
    for f in findings:
        if action(f) != "drop_except_first":
            continue
        members = sorted({ref.index: ref for ref in f.rows if ref.index in by_index}.values())
        alive = [ref for ref in members if ref.index not in quarantined]
        if not alive:
            continue
        keep = alive[0]
        for ref in alive[1:]:
            quarantined[ref.index] = QuarantinedRow(ref, f.check, f.code, f.message, f.cluster, kept=keep, data=by_index[ref.index].fields)
    kept = [rec for rec in records if rec.index not in quarantined]
    plan = FixPlan(len(records) + len(rejections), kept, sorted(quarantined.values(), key=lambda q: q.ref.index))
    if mask_pii:
        for rec in kept:
            masked = _mask_fields(rec.fields, lambda s: mask(s, phone_region))
            if masked != rec.fields:
                plan.masked[rec.index] = masked
        plan.masked_rows = len(plan.masked)
    return plan


def _mask_fields(value: Any, masker: Any) -> Any:
    if isinstance(value, str):
        return masker(value)
    if isinstance(value, dict):
        return {k: _mask_fields(v, masker) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_fields(v, masker) for v in value]
    return value


def write_fix(plan: FixPlan, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``clean.jsonl`` and ``quarantine.jsonl`` atomically; returns their paths."""
    from tunerail.io import write_private

    out = Path(out_dir)
    clean = write_private(out / "clean.jsonl", "".join(_line(row) for row in plan.clean_rows()))
    quarantine = write_private(out / "quarantine.jsonl", "".join(_line(q.to_json()) for q in plan.quarantined))
    return clean, quarantine


def _line(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, sort_keys=False, default=str, allow_nan=False) + "\n"  # NaN is not JSON


def read_raw_lines(path: str | Path, lines: Iterable[int]) -> dict[int, str]:
    """The text of the given 1-based physical lines (for quarantining rows that did not parse)."""
    wanted = set(lines)
    found: dict[int, str] = {}
    if not wanted:
        return found
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number in wanted:
                found[number] = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if len(found) == len(wanted):
                    break
    return found
