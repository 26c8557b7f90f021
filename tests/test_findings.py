"""The shared types at the step boundaries: ``Finding`` ranks its own severity, ``Verdict`` keeps its JSON."""

from __future__ import annotations

import json

from tunerail.data.records import RowRef
from tunerail.eval.verdict import Verdict, decide, verdict_of
from tunerail.findings import Finding, Severity, dumps, finding_from_dict


def _finding(severity: str, code: str = "DOC010") -> Finding:
    return Finding("duplicates.exact", severity, f"{severity} finding", "drop the copy", rows=[RowRef(3, 4)], code=code)  # type: ignore[arg-type]


def test_finding_converts_a_severity_string_so_it_ranks_by_rank_not_spelling():
    found = [_finding("warning"), _finding("error"), _finding("info")]
    assert all(isinstance(f.severity, Severity) for f in found)
    # as plain strings "warning" > "error"; ranked, error is the worst
    assert max(f.severity for f in found) is Severity.ERROR
    assert sorted(f.severity for f in found) == [Severity.INFO, Severity.WARNING, Severity.ERROR]
    assert [f.to_dict()["severity"] for f in found] == ["warning", "error", "info"]
    assert finding_from_dict(found[1].to_dict()).severity is Severity.ERROR


def test_verdict_is_an_enum_with_the_old_strings_in_json_and_text():
    assert verdict_of([_finding("warning"), _finding("info")]) is Verdict.READY
    assert verdict_of([_finding("warning"), _finding("error")]) is Verdict.NOT_READY
    assert json.loads(dumps({"verdict": Verdict.NOT_READY})) == {"verdict": "NOT READY"}
    assert f"{Verdict.NOT_READY}" == "NOT READY" and Verdict.READY == "READY"  # templates and old readers


def test_decide_returns_the_enum():
    from tunerail.config import CriteriaConfig
    from tunerail.eval.verdict import VerdictInputs

    est = {"value": 0.5, "low": 0.45, "high": 0.55, "n": 400}
    verdict, findings = decide(
        CriteriaConfig(metric="accuracy", threshold=0.7), VerdictInputs("accuracy", {"accuracy": est}, {"accuracy": est}, None)
    )
    assert verdict is Verdict.NOT_READY and any(f.code == "EVL001" and f.severity is Severity.ERROR for f in findings)
