"""Fold human review results into an eval report and re-decide its verdict.

The review step owns its results (``tunerail.review``); re-deciding READY / NOT READY is the
eval's rule (``verdict.is_ready``), so it lives here and ``review_results`` calls it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunerail.config import CriteriaConfig, TunerailConfig
from tunerail.eval.recipe import EvalResult
from tunerail.eval.report import write_eval_report
from tunerail.eval.verdict import Verdict, check_human, verdict_of
from tunerail.eval.verdict_context import HUMAN_CODES
from tunerail.findings import Finding, finding_from_dict


def fold_human_review(eval_dir: Path, results: dict[str, Any], config: TunerailConfig) -> tuple[Verdict, list[Finding]]:
    """Replace the human-review findings in report.json, re-decide, and re-render report.html.

    The criteria come from report.json (those the eval judged with), not from ``config``, so a
    criterion edited after the eval cannot be slipped in here.
    """
    data = json.loads((eval_dir / "report.json").read_text(encoding="utf-8"))
    saved = {k: v for k, v in (data.get("criteria") or {}).items() if k in CriteriaConfig.model_fields}
    criteria = CriteriaConfig(**saved) if saved else config.criteria
    findings = [finding_from_dict(f) for f in data.get("findings", []) if f.get("code") not in HUMAN_CODES]
    findings += check_human(criteria, results)
    verdict = verdict_of(findings)
    fields = {k: v for k, v in data.items() if k in EvalResult.__dataclass_fields__}
    fields.update(verdict=verdict, findings=findings)
    fields["review"] = {**(fields.get("review") or {}), "human": results}
    write_eval_report(EvalResult(**fields), eval_dir)
    return verdict, findings
