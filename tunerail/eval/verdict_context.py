"""Verdict checks on what surrounds the metric: the upstream steps, the LLM judge, the human review.

Codes EVL020-021, EVL030-032 and EVL060-063 of the table in ``tunerail/eval/verdict.py``; each check
reads a plain record (findings, the judge's result, review/results.json), not the metric estimates.
"""

from __future__ import annotations

from typing import Any, Iterable

from tunerail.findings import Finding, Severity
from tunerail.review.results import subject_win_rate

JUDGE_MAX_FAILED_SHARE = 0.5  # more failed judge calls than this: the judge result is an error, not a warning


def finding(code: str, check: str, severity: Severity, message: str, fix: str, **details: Any) -> Finding:
    """One verdict finding (details become ``Finding.details``)."""
    return Finding(check=check, code=code, severity=severity, message=message, fix=fix, details=details)


def check_upstream(doctor: Iterable[Finding] | None, leakage: Iterable[Finding] | None) -> list[Finding]:
    out = []
    doc_errors = [f for f in (doctor or []) if f.severity == Severity.ERROR]
    if doc_errors:
        codes = sorted({f.code or f.check for f in doc_errors})
        out.append(
            finding(
                "EVL020",
                "doctor.unresolved",
                Severity.ERROR,
                f"{len(doc_errors)} unresolved doctor error(s): {', '.join(codes[:8])}",
                "run `tunerail doctor --fix` or fix the rows, then split and train again",
                codes=codes,
            )
        )
    leaks = [f for f in (leakage or []) if f.severity >= Severity.WARNING]
    if leaks:
        worst = max(f.severity for f in leaks)
        rows = sum(len(f.rows) for f in leaks)
        out.append(
            finding(
                "EVL021",
                "leakage.found",
                Severity.ERROR if worst == Severity.ERROR else Severity.WARNING,
                f"{len(leaks)} leakage finding(s) between test and train/validation ({rows} rows)",
                "re-split with the leaking rows grouped (tunerail split) so test scores are not inflated",
                findings=len(leaks),
            )
        )
    return out


def check_judge(judge: dict[str, Any] | None) -> list[Finding]:
    if not judge:
        return []
    out = []
    bad = judge["parse_failures"] + judge["request_failures"]
    if judge["calls"] and bad / judge["calls"] > JUDGE_MAX_FAILED_SHARE:
        # A judge that could not judge says nothing about the model: an error, and no win rate to report.
        return [
            finding(
                "EVL032",
                "judge.parse_failures",
                Severity.ERROR,
                f"the judge could not judge: {bad} of {judge['calls']} calls failed ({judge['request_failures']} "
                f"request(s) failed, {judge['parse_failures']} repl(ies) unparseable)",
                "check eval.judge.endpoint, eval.judge.model and the API key, then run eval again",
                parse_failures=judge["parse_failures"],
                request_failures=judge["request_failures"],
            )
        ]
    if judge["base_win_rate"] > judge["tuned_win_rate"]:
        out.append(
            finding(
                "EVL030",
                "judge.prefers_base",
                Severity.ERROR,
                f"the judge prefers the base model: base wins {100 * judge['base_win_rate']:.0f} %, tuned wins "
                f"{100 * judge['tuned_win_rate']:.0f} % of {judge['pairs']} pairs (order-consistent verdicts)",
                "read the side-by-side examples: the metric may reward something users do not want",
            )
        )
    else:
        out.append(
            finding(
                "EVL030",
                "judge.prefers_base",
                Severity.INFO,
                f"pass: tuned wins {100 * judge['tuned_win_rate']:.0f} %, base {100 * judge['base_win_rate']:.0f} % "
                f"of {judge['pairs']} pairs",
                "none needed",
            )
        )
    pc = judge.get("position_consistency")
    if pc is not None and pc < 0.6:
        out.append(
            finding(
                "EVL031",
                "judge.position_bias",
                Severity.WARNING,
                f"judge verdicts survive the answer swap in only {100 * pc:.0f} % of pairs (position bias)",
                "use a stronger judge model or a more specific rubric; trust the metric over the judge",
            )
        )
    if bad:
        out.append(
            finding(
                "EVL032",
                "judge.parse_failures",
                Severity.WARNING,
                f"{judge['parse_failures']} judge repl(ies) unparseable and {judge['request_failures']} request(s) "
                f"failed out of {judge['calls']} calls",
                "check the judge endpoint and model; failures are excluded from win rates, not counted as ties",
                parse_failures=judge["parse_failures"],
                request_failures=judge["request_failures"],
            )
        )
    return out


HUMAN_CODES = ("EVL060", "EVL061", "EVL062", "EVL063")


def check_human(criteria: Any, human: dict[str, Any] | None) -> list[Finding]:
    """``criteria.human`` on the blind review (`tunerail review results`); nothing when not required.

    The win rate is the tuned system's wins / (wins + losses) over every pair it is in, judged on
    the Wilson lower bound (``criteria.decision: ci``) or the point value (``point``).
    """
    crit = getattr(criteria, "human", None)
    if crit is None:
        return []
    if not human:
        return [
            finding(
                "EVL060",
                "human.missing",
                Severity.ERROR,
                "criteria.human is set but there are no review results yet",
                "run `tunerail review serve RUN_DIR`, let the annotators finish, then `tunerail review results RUN_DIR`",
            )
        ]
    out = []
    n = human.get("items_reviewed", 0)
    ok = n >= crit.min_items
    out.append(
        finding(
            "EVL061",
            "human.min_items",
            Severity.INFO if ok else Severity.ERROR,
            f"{'pass' if ok else 'fail'}: {n} item(s) reviewed; criterion >= {crit.min_items}",
            "none needed" if ok else "have the annotators review more items (or serve more material)",
            passed=ok,
            items=n,
        )
    )
    if crit.min_win_rate is not None:
        out += _human_win_rates(crit, human, getattr(criteria, "decision", "ci"))
    if crit.min_alpha is not None:
        out.append(_human_agreement(crit, human))
    return out


def _human_win_rates(crit: Any, human: dict[str, Any], decision: str) -> list[Finding]:
    """EVL062 per (system, against) pair: the tuned win rate, ties excluded, on the Wilson lower bound or the point value."""
    out = []
    for w in subject_win_rate(human):
        bound = w["low"] if decision == "ci" else w["value"]
        ok = bound is not None and w["n"] > 0 and bound >= crit.min_win_rate
        value = (
            "no decided votes"
            if w["value"] is None
            else (f"{100 * w['value']:.1f} % (95 % CI {100 * w['low']:.1f}-{100 * w['high']:.1f} %)")
        )
        out.append(
            finding(
                "EVL062",
                "human.win_rate",
                Severity.INFO if ok else Severity.ERROR,
                f"{'pass' if ok else 'fail'}: reviewers prefer {w['system']} over {w['against']} in {value} "
                f"of {w['n']} decided votes ({w['ties']} ties); criterion >= {100 * crit.min_win_rate:.0f} %",
                "none needed" if ok else "read the most disagreed and the losing items; more reviewed items narrow the interval",
                passed=ok,
                **{k: w[k] for k in ("system", "against", "value", "low", "high", "n")},
            )
        )
    return out


def _human_agreement(crit: Any, human: dict[str, Any]) -> Finding:
    """EVL063: preference agreement (Krippendorff alpha) against ``min_alpha``; undefined alpha fails unless every overlap agrees."""
    agr = (human.get("agreement") or {}).get("preference") or {}
    alpha = agr.get("alpha")
    if alpha is None:
        trivially = agr.get("percent") == 1.0 and agr.get("units", 0) > 0
        return finding(
            "EVL063",
            "human.agreement",
            Severity.WARNING if trivially else Severity.ERROR,
            f"preference agreement: alpha undefined ({agr.get('undefined') or 'no agreement data'})",
            "none needed (every overlapping vote agrees)"
            if trivially
            else "serve with two or more annotators and review.overlap > 0, so some items are rated twice",
            passed=trivially,
            percent=agr.get("percent"),
            units=agr.get("units", 0),
        )
    ok = alpha >= crit.min_alpha
    return finding(
        "EVL063",
        "human.agreement",
        Severity.INFO if ok else Severity.ERROR,
        f"{'pass' if ok else 'fail'}: preference Krippendorff alpha {alpha:.3f} (raw agreement "
        f"{100 * agr['percent']:.0f} % on {agr['units']} items rated twice); criterion >= {crit.min_alpha}",
        "none needed"
        if ok
        else "reviewers disagree: sharpen the rubric descriptions, calibrate on the most disagreed items, then review again",
        passed=ok,
        alpha=alpha,
        percent=agr["percent"],
    )


def cut_baseline(b: dict[str, Any], scores: str, **gain: float) -> Finding:
    """EVL054: the tuned model beats an alternative the time budget cut before its early stopping said it converged.

    A team would train that alternative to convergence, so a win over the cut one proves nothing.
    """
    epochs = (b.get("details") or {}).get("epochs_run")
    return finding(
        "EVL054",
        "baseline.cut",
        Severity.ERROR,
        f"beaten only as cut by the alternatives' time budget (after {epochs} epoch(s), before its validation score "
        "stopped improving): " + scores,
        "raise eval.alternatives_budget_share, or set it to null (no cap), and re-run eval: the LLM outputs come "
        "from the cache, only the alternative is refitted",
        baseline=b["name"],
        **gain,
    )
