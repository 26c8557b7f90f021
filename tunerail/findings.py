"""The one finding type shared by the doctor, the hyperparameter lint, leakage and the verdict.

A check is a small pure function that returns ``list[Finding]``; summaries are derived.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Callable, Iterable

from tunerail.data.records import RowRef


class Severity(str, Enum):
    """How bad a finding is, ordered ``info < warning < error`` by every comparison and ``max()``.

    A ``str`` enum so it serialises as its value; the comparisons are by rank, never by the string
    (where ``"warning" > "error"``). Comparing with a plain string converts it first.
    """

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    def _order(self) -> int:
        return _SEVERITY_ORDER[self.value]

    def __lt__(self, other: object) -> bool:  # type: ignore[override]
        return self._order() < Severity(other)._order()

    def __le__(self, other: object) -> bool:  # type: ignore[override]
        return self._order() <= Severity(other)._order()

    def __gt__(self, other: object) -> bool:  # type: ignore[override]
        return self._order() > Severity(other)._order()

    def __ge__(self, other: object) -> bool:  # type: ignore[override]
        return self._order() >= Severity(other)._order()

    def __hash__(self) -> int:
        return str.__hash__(self)


_SEVERITY_ORDER = {"info": 0, "warning": 1, "error": 2}


@dataclass
class Finding:
    """One problem found by a check.

    ``check`` is a stable dotted name (``duplicates.exact``), ``code`` a stable short code
    (``DOC010``). ``rows`` lists every affected row; for a cluster (duplicates, conflicts)
    every member, with ``cluster`` naming it. ``details`` carries check-specific data
    (similarity, suggested label, confidence...).
    """

    check: str
    severity: Severity
    message: str
    fix: str
    rows: list[RowRef] = field(default_factory=list)
    code: str = ""
    cluster: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.severity = Severity(self.severity)  # "error" from JSON or a caller becomes the ranked enum, here once
        # Messages and details quote rows and labels: secrets and personal data are masked here,
        # once, so no report, JSON file or terminal line can show them (tunerail/report/redact.py).
        from tunerail.report.redact import redact

        self.message = redact(self.message)
        self.fix = redact(self.fix)
        self.details = redact(self.details)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "check": self.check,
            "code": self.code,
            "severity": self.severity.value,
            "rows": [r.to_dict() for r in self.rows],
            "message": self.message,
            "fix": self.fix,
        }
        if self.cluster is not None:
            out["cluster"] = self.cluster
        if self.details:
            out["details"] = self.details
        return out


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Deterministic order: severity (worst first), check, first row, message."""

    def key(f: Finding) -> tuple:
        first = f.rows[0].index if f.rows else -1
        return (f.check, first, f.cluster or "", f.message)

    # Two stable sorts: by check and row, then by severity, worst first.
    return sorted(sorted(findings, key=key), key=lambda f: f.severity, reverse=True)


def summarize(findings: Iterable[Finding]) -> dict[str, Any]:
    """Counts by severity and by check, plus how many distinct rows are affected."""
    findings = list(findings)
    by_sev = Counter(f.severity.value for f in findings)
    by_check = Counter(f.check for f in findings)
    rows = {(r.file, r.index) for f in findings for r in f.rows}
    return {
        "findings": len(findings),
        "by_severity": {s.value: by_sev.get(s.value, 0) for s in Severity},
        "by_check": dict(sorted(by_check.items())),
        "rows_affected": len(rows),
    }


def fails(findings: Iterable[Finding], fail_on: Severity | str) -> bool:
    """True when any finding is at or above ``fail_on`` (the CI gate)."""
    threshold = Severity(fail_on)
    return any(f.severity >= threshold for f in findings)


def dumps(payload: Any) -> str:
    """Canonical JSON for reports: sorted keys, fixed separators, so identical input is byte-identical.

    Every string is redacted first (``tunerail.report.redact``): reports quote rows.
    """
    from tunerail.report.redact import redact_text

    return json.dumps(_plain(payload, redact_text), sort_keys=True, ensure_ascii=False, indent=2) + "\n"


def _plain(obj: Any, text: Callable[[str], str]) -> Any:
    """What ``json.loads(json.dumps(obj, default=_default))`` gives, every string passed through ``text``.

    Built in one pass: the round trip through a string held the payload three times over (its
    string, the parsed copy, the redacted copy), the audit's peak on a 1M-row file with 106k findings.
    """
    if isinstance(obj, str):
        return text(str.__str__(obj))  # a str subclass (Severity, Markup) as its plain value, as json writes it
    if obj is None or obj is True or obj is False:
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, dict):
        return {text(_json_key(k)): _plain(v, text) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, text) for v in obj]
    return _plain(_default(obj), text)


def _json_key(key: Any) -> str:
    """A dict key as ``json.dumps`` writes it."""
    if isinstance(key, str):
        return str.__str__(key)
    if key is True or key is False or key is None:
        return json.dumps(key)
    if isinstance(key, (int, float)):
        return json.dumps(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _default(obj: Any) -> Any:
    if isinstance(obj, Finding):
        return obj.to_dict()
    if isinstance(obj, RowRef):
        return obj.to_dict()
    if isinstance(obj, Enum):
        return obj.value
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def finding_from_dict(data: dict[str, Any]) -> Finding:
    """Inverse of ``Finding.to_dict`` (rows may carry extra keys such as ``file``)."""
    rows = [RowRef(int(r["index"]), int(r.get("line", r["index"] + 1)), r.get("file")) for r in data.get("rows", [])]
    return Finding(
        check=data["check"],
        severity=Severity(data["severity"]),
        message=data["message"],
        fix=data.get("fix", ""),
        rows=rows,
        code=data.get("code", ""),
        cluster=data.get("cluster"),
        details=data.get("details") or {},
    )


def load_findings(path: str | Any) -> list[Finding]:
    """Read the findings of any step's JSON output (``{"findings": [...]}``)."""
    with open(path, encoding="utf-8") as handle:
        payload = json.load(handle)
    return [finding_from_dict(item) for item in payload.get("findings", [])]
