"""What the doctor returns: ``DoctorResult`` and its parts, shared by the recipe, the report and the CLI.

Kept apart from ``recipe.py`` so that the report (which the recipe writes) can name the result
type without importing the recipe back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunerail.data.records import Rejection
from tunerail.doctor.fix import FixPlan
from tunerail.findings import Finding, Severity, fails


@dataclass(frozen=True)
class SkippedCheck:
    code: str
    name: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "check": self.name, "reason": self.reason}


@dataclass
class DoctorResult:
    """What ``tunerail doctor`` prints and writes.

    ``rows_in`` counts every row of the file (records + rejections); ``row_stats`` holds the
    per-row figures the report plots (token lengths, answer lengths, labels, languages);
    ``timings`` (seconds per stage) are kept out of ``findings.json`` so that file is
    byte-identical across runs.
    """

    data: str
    format: str
    task: str
    rows_in: int
    records: int
    rejections: list[Rejection]
    findings: list[Finding]
    summary: dict[str, Any]
    row_stats: dict[str, Any]
    checks_run: list[str]
    skipped: list[SkippedCheck]
    timings: dict[str, float]
    fix: FixPlan | None = None
    out_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)

    def fails(self, fail_on: Severity | str = Severity.ERROR) -> bool:
        """True when a finding at or above ``fail_on`` exists (the CI gate)."""
        return fails(self.findings, fail_on)

    def by_check(self) -> list[dict[str, Any]]:
        """One row per check that found something: check, code, worst severity, findings, rows affected."""
        return findings_by_check(self.findings)

    def to_json(self) -> dict[str, Any]:
        """The ``findings.json`` payload: no timestamps or timings, so identical input gives identical bytes."""
        return {"summary": self.summary, "findings": [finding_json(f, self.data) for f in self.findings]}


def findings_by_check(findings: list[Finding]) -> list[dict[str, Any]]:
    """One row per check that found something (check, code, worst severity, findings, rows), worst first.

    The doctor's summary table, for ``tunerail doctor`` and ``tunerail run`` alike.
    """
    groups: dict[str, list[Finding]] = {}
    for f in findings:
        groups.setdefault(f.check, []).append(f)
    out = []
    for name, items in groups.items():
        worst = max(f.severity for f in items)
        rows = {(r.file, r.index) for f in items for r in f.rows}
        out.append({"check": name, "code": items[0].code, "severity": worst.value, "findings": len(items), "rows": len(rows)})
    by_check = sorted(out, key=lambda g: g["check"])
    return sorted(by_check, key=lambda g: Severity(g["severity"]), reverse=True)  # stable: worst first


def finding_json(f: Finding, data: str) -> dict[str, Any]:
    """A finding as in findings.json; row refs drop ``file`` when it is the audited file itself."""
    out = f.to_dict()
    out["rows"] = [{"index": r.index, "line": r.line} if r.file in (None, data) else r.to_dict() for r in f.rows]
    return out
