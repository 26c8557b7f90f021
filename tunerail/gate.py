"""The `run` gate between the data steps and training: what the doctor and leakage left unresolved.

Two rules, checked after leakage and before any training:

* findings at or above ``pipeline.stop_on`` that ``doctor --fix`` did not resolve stop the run;
* doctor warnings still on a large share of the rows (``pipeline.warning_share``, default 10 %)
  are one finding the user must acknowledge (``pipeline.acknowledge_warnings: true``): 414 language
  warnings on 28 % of Banking77 rows went on to train unread (issue 25).

``gate.json`` records what was let through and whether the warnings were acknowledged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunerail.errors import GuardrailError, Problem
from tunerail.findings import Finding, Severity, load_findings
from tunerail.io import write_atomic


def _quarantined(doctor_dir: Path) -> tuple[set[int], dict[str, set[int]]]:
    """Rows ``--fix`` removed, and per code the rows it kept on purpose (the first of a duplicate cluster)."""
    removed: set[int] = set()
    kept: dict[str, set[int]] = {}
    quarantine = doctor_dir / "quarantine.jsonl"
    if quarantine.exists():
        with open(quarantine, encoding="utf-8") as handle:
            for line in handle:
                meta = json.loads(line).get("_tunerail", {})
                if "index" in meta:
                    removed.add(int(meta["index"]))
                if isinstance(meta.get("kept"), dict) and "index" in meta["kept"]:
                    kept.setdefault(str(meta.get("code")), set()).add(int(meta["kept"]["index"]))
    return removed, kept


def unresolved_doctor_findings(doctor_dir: Path) -> list[Finding]:
    """Doctor findings that ``--fix`` did not resolve: those with a row still in ``clean.jsonl``.

    Exact duplicates and malformed rows are quarantined, so they no longer count against the
    verdict; a conflict or a likely mislabel that stayed in the data does.
    """
    removed, kept = _quarantined(doctor_dir)
    return [
        f
        for f in load_findings(doctor_dir / "findings.json")
        if not f.rows or any(r.index not in removed and r.index not in kept.get(f.code, ()) for r in f.rows)
    ]


def blocking_findings(doctor_dir: Path, leakage_json: Path, stop_on: str) -> list[Finding]:
    """Unresolved doctor findings and leakage findings at or above ``stop_on`` (none for ``never``)."""
    if stop_on == "never":
        return []
    floor = Severity(stop_on)
    found = unresolved_doctor_findings(doctor_dir) + load_findings(leakage_json)
    return [f for f in found if Severity(f.severity) >= floor]


def warned_rows(doctor_dir: Path) -> tuple[int, int]:
    """(rows still in ``clean.jsonl`` named by a doctor warning or error, rows in ``clean.jsonl``)."""
    removed, _ = _quarantined(doctor_dir)
    named = {r.index for f in load_findings(doctor_dir / "findings.json") if Severity(f.severity) >= Severity.WARNING for r in f.rows}
    clean = doctor_dir / "clean.jsonl"
    total = sum(1 for line in open(clean, encoding="utf-8") if line.strip()) if clean.exists() else 0
    return len(named - removed), total


def warning_share_finding(warned: int, total: int, max_share: float) -> Finding | None:
    """One finding when unresolved doctor warnings name more than ``max_share`` of the training rows.

    >>> warning_share_finding(280, 1000, 0.1).code
    'RUN001'
    >>> warning_share_finding(50, 1000, 0.1) is None
    True
    """
    if total == 0 or warned / total <= max_share:
        return None
    return Finding(
        "pipeline.doctor_warnings",
        Severity.ERROR,
        f"{warned} of {total} training rows ({warned / total:.0%}) still carry doctor warnings, "
        f"over pipeline.warning_share={max_share:.0%}: training on them unread is rarely what was meant",
        "read the doctor report and fix or drop those rows (tunerail doctor --fix, or edit the data); "
        "or set pipeline.acknowledge_warnings: true to train on them (recorded in gate.json)",
        code="RUN001",
        details={"rows": warned, "total": total, "share": round(warned / total, 4), "max_share": max_share},
    )


def gate(out: Path, pipeline: Any, leakage_json: Path) -> dict[str, Any]:
    """Stop before training on blocking findings or unread warnings; record what was let through.

    ``pipeline`` is the config's ``pipeline`` section (``stop_on``, ``warning_share``,
    ``acknowledge_warnings``). Raises ``GuardrailError`` listing the findings; else writes and
    returns ``gate.json``.
    """
    doctor_dir, stop_on = out / "doctor", pipeline.stop_on
    blocking = blocking_findings(doctor_dir, leakage_json, stop_on)
    if blocking:
        raise GuardrailError(_problems(out, blocking, stop_on))
    warned, total = warned_rows(doctor_dir)
    share = warning_share_finding(warned, total, pipeline.warning_share)
    if share is not None and stop_on != "never" and not pipeline.acknowledge_warnings:
        raise GuardrailError([Problem(f"training not started: {share.message}", field="pipeline.acknowledge_warnings", fix=share.fix)])
    serious = [f for f in unresolved_doctor_findings(doctor_dir) + load_findings(leakage_json) if Severity(f.severity) >= Severity.WARNING]
    record = {
        "stop_on": stop_on,
        "continued_past": sorted({f.code or f.check for f in serious}) if stop_on == "never" else [],
        "findings_at_warning_or_above": len(serious),
        "doctor_warning_rows": warned,
        "doctor_warning_share": round(warned / total, 4) if total else 0.0,
        "warnings_acknowledged": share is not None,
    }
    write_atomic(out / "gate.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def _problems(out: Path, blocking: list[Finding], stop_on: str) -> list[Problem]:
    shown = blocking[:20]
    problems = [
        Problem(
            f"{f.code} {f.check} ({f.severity.value}): {f.message}",
            file=f.rows[0].file if f.rows else None,
            line=f.rows[0].line if f.rows else None,
        )
        for f in shown
    ]
    more = len(blocking) - len(shown)
    problems.append(
        Problem(
            f"training not started: {len(blocking)} unresolved doctor/leakage finding(s) at or above {stop_on!r}"
            + (f" ({more} more in {out / 'doctor' / 'findings.json'} and {out / 'leakage' / 'leakage.json'})" if more else ""),
            field="pipeline.stop_on",
            fix="fix the rows (tunerail doctor --fix, or edit the data) and run again; or set pipeline.stop_on: never "
            "to train anyway (recorded, and the verdict still counts them)",
        )
    )
    return problems
