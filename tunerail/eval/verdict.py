"""The verdict: READY only when every criterion fixed before training passes and nothing blocks.

Each reason is a shared ``Finding`` (codes EVL0xx) so the report, the CLI and CI read the same
list. Passing criteria are recorded as ``info`` findings: the report shows every criterion with
pass/fail, not just the failures. READY <=> no ``error`` finding.

| code   | check                       | severity | when |
| EVL001 | criteria.threshold          | error    | main metric below ``criteria.threshold`` |
| EVL002 | criteria.min_improvement    | error    | gain over the base model below ``criteria.min_improvement`` |
| EVL003 | criteria.significance       | warning  | the improvement's 95 % CI includes 0 |
| EVL004 | criteria.margin             | error    | test-set CI half-width wider than ``criteria.margin`` |
| EVL005 | criteria.per_class_floor    | error    | a class's recall below ``criteria.per_class_floor`` |
| EVL006 | forgetting.budget           | error    | general-suite relative drop above ``criteria.max_forgetting`` |
| EVL007 | forgetting.skipped          | warning  | the forgetting suite was switched off or had no tuned model |
| EVL010 | criteria.edited             | error    | criteria hash differs from the one frozen at split time |
| EVL011 | criteria.unverified         | warning  | no split.json given: criteria and test set not checked as frozen |
| EVL020 | doctor.unresolved           | error    | doctor errors were passed in and are unresolved |
| EVL021 | leakage.found               | error    | leakage between test and train/validation |
| EVL030 | judge.prefers_base          | error    | the judge prefers the base model (consistent wins) |
| EVL031 | judge.position_bias         | warning  | judge winners change when answers swap (< 60 % consistent) |
| EVL032 | judge.parse_failures        | warning  | judge replies that could not be parsed or requests that failed |
| EVL040 | eval.no_adapter             | warning  | no fine-tuned adapter: the base model is judged against itself |
| EVL041 | eval.unmatched_outputs      | warning  | > 20 % of generated answers match no label |
| EVL042 | eval.rejected_rows          | warning  | test rows that could not be read were left out of every metric |
| EVL050 | human.missing               | error    | ``criteria.human`` is set but no review results exist yet |
| EVL051 | human.min_items             | error    | fewer reviewed items than ``criteria.human.min_items`` |
| EVL052 | human.win_rate              | error    | tuned win rate (Wilson CI lower bound, ties excluded) below ``min_win_rate`` |
| EVL053 | human.agreement             | error    | preference alpha below ``min_alpha``, or not computable (no overlap) |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from tunerail.findings import Finding, Severity

LOWER_IS_BETTER = {"perplexity", "answer_nll"}


@dataclass
class VerdictInputs:
    """Everything the verdict depends on, already computed (pure function input)."""

    metric: str
    tuned: dict[str, dict[str, Any]]        # metric -> Estimate dict (value, low, high, n)
    base: dict[str, dict[str, Any]]
    improvement: dict[str, Any] | None      # paired estimate of tuned - base on the main metric
    per_class: list[dict[str, Any]] | None = None
    forgetting: dict[str, Any] | None = None
    forgetting_enabled: bool = True
    has_adapter: bool = True
    criteria_state: str = "unverified"      # "frozen" | "edited" | "unverified"
    doctor_findings: list[Finding] | None = None
    leakage_findings: list[Finding] | None = None
    judge: dict[str, Any] | None = None
    unmatched_rate: float | None = None
    rejected_rows: int = 0
    human: dict[str, Any] | None = None     # `tunerail review results` (review/results.json)


def decide(criteria: Any, inputs: VerdictInputs) -> tuple[str, list[Finding]]:
    """Return ("READY" | "NOT READY", findings with every reason)."""
    findings = [
        *check_threshold(criteria, inputs), *check_improvement(criteria, inputs), *check_margin(criteria, inputs),
        *check_per_class(criteria, inputs), *check_forgetting(criteria, inputs), *check_criteria_state(inputs),
        *check_upstream(inputs.doctor_findings, inputs.leakage_findings), *check_judge(inputs.judge),
        *check_run(inputs), *check_human(criteria, inputs.human),
    ]
    ready = not any(Severity(f.severity) == Severity.ERROR for f in findings)
    return ("READY" if ready else "NOT READY"), findings


def _f(code: str, check: str, severity: Severity, message: str, fix: str, **details: Any) -> Finding:
    return Finding(check=check, code=code, severity=severity, message=message, fix=fix, details=details)


def _passes(metric: str, value: float, bound: float) -> bool:
    return value <= bound if metric in LOWER_IS_BETTER else value >= bound


def check_threshold(criteria: Any, x: VerdictInputs) -> list[Finding]:
    if criteria.threshold is None:
        return []
    est = x.tuned[x.metric]
    ok = _passes(x.metric, est["value"], criteria.threshold)
    cmp = "<=" if x.metric in LOWER_IS_BETTER else ">="
    msg = (f"{x.metric} = {est['value']:.4f} (95 % CI {est['low']:.4f}-{est['high']:.4f}, n={est['n']}); "
           f"criterion {cmp} {criteria.threshold}")
    if ok:
        return [_f("EVL001", "criteria.threshold", Severity.INFO, "pass: " + msg, "none needed", passed=True, **est)]
    return [_f("EVL001", "criteria.threshold", Severity.ERROR, "fail: " + msg,
               "improve the data or training (more rows per class, more epochs, a higher learning rate), "
               "or revisit the threshold BEFORE the next split, not after seeing this number", passed=False, **est)]


def check_improvement(criteria: Any, x: VerdictInputs) -> list[Finding]:
    out: list[Finding] = []
    imp = x.improvement
    if imp is None:
        return out
    sign = -1 if x.metric in LOWER_IS_BETTER else 1
    gain, lo, hi = sign * imp["value"], sign * (imp["high"] if sign < 0 else imp["low"]), sign * (imp["low"] if sign < 0 else imp["high"])
    text = f"gain over base on {x.metric} = {gain:+.4f} (95 % CI {lo:+.4f} to {hi:+.4f}"
    if "p_value" in imp:
        text += f", {imp.get('test', 'paired test')} p = {imp['p_value']:.3g}"
    text += ")"
    if criteria.min_improvement is not None:
        ok = gain >= criteria.min_improvement
        out.append(_f("EVL002", "criteria.min_improvement", Severity.INFO if ok else Severity.ERROR,
                      ("pass: " if ok else "fail: ") + text + f"; criterion >= {criteria.min_improvement}",
                      "none needed" if ok else "the fine-tune does not beat the base model by enough: check the "
                      "loss curves, the prompt template, and whether the base model with a better prompt suffices",
                      passed=ok, gain=gain, low=lo, high=hi))
    if lo <= 0:
        out.append(_f("EVL003", "criteria.significance", Severity.WARNING,
                      text + ": the confidence interval includes no improvement",
                      "collect a larger test set or treat the gain as unproven", gain=gain, low=lo, high=hi))
    return out


def check_margin(criteria: Any, x: VerdictInputs) -> list[Finding]:
    est = x.tuned[x.metric]
    half = (est["high"] - est["low"]) / 2
    ok = half <= criteria.margin
    msg = f"test set estimates {x.metric} to +/- {half:.4f} (95 % CI half-width, n={est['n']}); criterion <= {criteria.margin}"
    return [_f("EVL004", "criteria.margin", Severity.INFO if ok else Severity.ERROR, ("pass: " if ok else "fail: ") + msg,
               "none needed" if ok else "the test set is too small to decide at this precision: add test rows "
               "(the half-width shrinks with 1/sqrt(n)) or accept a wider criteria.margin before splitting",
               passed=ok, half_width=half)]


def check_per_class(criteria: Any, x: VerdictInputs) -> list[Finding]:
    if criteria.per_class_floor is None or not x.per_class:
        return []
    low = [c for c in x.per_class if c["support"] and c["recall"] < criteria.per_class_floor]
    if not low:
        return [_f("EVL005", "criteria.per_class_floor", Severity.INFO,
                   f"pass: every class has recall >= {criteria.per_class_floor}", "none needed", passed=True)]
    names = ", ".join(f"{c['label']} ({c['recall']:.2f})" for c in low[:10])
    return [_f("EVL005", "criteria.per_class_floor", Severity.ERROR,
               f"fail: {len(low)} class(es) below recall {criteria.per_class_floor}: {names}",
               "add training rows for these classes or check them for label noise (tunerail doctor)",
               passed=False, classes=[c["label"] for c in low])]


def check_forgetting(criteria: Any, x: VerdictInputs) -> list[Finding]:
    if not x.forgetting_enabled or x.forgetting is None:
        why = "switched off (eval.forgetting: false)" if not x.forgetting_enabled else "not run (no fine-tuned model)"
        return [_f("EVL007", "forgetting.skipped", Severity.WARNING, f"the general-capability suite was {why}",
                   "set eval.forgetting: true and pass the adapter to measure what fine-tuning cost")]
    worst = x.forgetting["worst"]
    ok = worst <= criteria.max_forgetting
    parts = ", ".join(f"{k} {100 * v:+.1f} %" for k, v in x.forgetting["relative_change"].items())
    msg = f"general-suite relative degradation: {parts}; worst {100 * worst:.1f} % vs budget {100 * criteria.max_forgetting:.0f} %"
    return [_f("EVL006", "forgetting.budget", Severity.INFO if ok else Severity.ERROR, ("pass: " if ok else "fail: ") + msg,
               "none needed" if ok else "lower the learning rate or epochs, use a smaller LoRA rank, or mix general "
               "rows back in (train.replay_ratio)", passed=ok, worst=worst)]


def check_criteria_state(x: VerdictInputs) -> list[Finding]:
    if x.criteria_state == "edited":
        return [_f("EVL010", "criteria.edited", Severity.ERROR,
                   "criteria edited after split: the success criteria differ from those frozen with the test set",
                   "restore the criteria recorded in split.json; changing them after seeing results needs a new split "
                   "and a fresh test set")]
    if x.criteria_state == "unverified":
        return [_f("EVL011", "criteria.unverified", Severity.WARNING,
                   "no split.json given: the test set and criteria could not be checked against the frozen split",
                   "pass --split-json (written by `tunerail split`)")]
    return []


def check_upstream(doctor: Iterable[Finding] | None, leakage: Iterable[Finding] | None) -> list[Finding]:
    out = []
    doc_errors = [f for f in (doctor or []) if Severity(f.severity) == Severity.ERROR]
    if doc_errors:
        codes = sorted({f.code or f.check for f in doc_errors})
        out.append(_f("EVL020", "doctor.unresolved", Severity.ERROR,
                      f"{len(doc_errors)} unresolved doctor error(s): {', '.join(codes[:8])}",
                      "run `tunerail doctor --fix` or fix the rows, then split and train again", codes=codes))
    leaks = [f for f in (leakage or []) if Severity(f.severity) >= Severity.WARNING]
    if leaks:
        worst = max(Severity(f.severity) for f in leaks)
        rows = sum(len(f.rows) for f in leaks)
        out.append(_f("EVL021", "leakage.found", Severity.ERROR if worst == Severity.ERROR else Severity.WARNING,
                      f"{len(leaks)} leakage finding(s) between test and train/validation ({rows} rows)",
                      "re-split with the leaking rows grouped (tunerail split) so test scores are not inflated",
                      findings=len(leaks)))
    return out


def check_judge(judge: dict[str, Any] | None) -> list[Finding]:
    if not judge:
        return []
    out = []
    if judge["base_win_rate"] > judge["tuned_win_rate"]:
        out.append(_f("EVL030", "judge.prefers_base", Severity.ERROR,
                      f"the judge prefers the base model: base wins {100 * judge['base_win_rate']:.0f} %, tuned wins "
                      f"{100 * judge['tuned_win_rate']:.0f} % of {judge['pairs']} pairs (order-consistent verdicts)",
                      "read the side-by-side examples: the metric may reward something users do not want"))
    else:
        out.append(_f("EVL030", "judge.prefers_base", Severity.INFO,
                      f"pass: tuned wins {100 * judge['tuned_win_rate']:.0f} %, base {100 * judge['base_win_rate']:.0f} % "
                      f"of {judge['pairs']} pairs", "none needed"))
    pc = judge.get("position_consistency")
    if pc is not None and pc < 0.6:
        out.append(_f("EVL031", "judge.position_bias", Severity.WARNING,
                      f"judge verdicts survive the answer swap in only {100 * pc:.0f} % of pairs (position bias)",
                      "use a stronger judge model or a more specific rubric; trust the metric over the judge"))
    bad = judge["parse_failures"] + judge["request_failures"]
    if bad:
        out.append(_f("EVL032", "judge.parse_failures", Severity.WARNING,
                      f"{judge['parse_failures']} judge repl(ies) unparseable and {judge['request_failures']} request(s) "
                      f"failed out of {judge['calls']} calls", "check the judge endpoint and model; failures are excluded "
                      "from win rates, not counted as ties", parse_failures=judge["parse_failures"],
                      request_failures=judge["request_failures"]))
    return out


def check_run(x: VerdictInputs) -> list[Finding]:
    out = []
    if not x.has_adapter:
        out.append(_f("EVL040", "eval.no_adapter", Severity.WARNING,
                      "no fine-tuned adapter given: the base model is evaluated as the candidate",
                      "pass --adapter (the folder written by `tunerail train`)"))
    if x.unmatched_rate is not None and x.unmatched_rate > 0.2:
        out.append(_f("EVL041", "eval.unmatched_outputs", Severity.WARNING,
                      f"{100 * x.unmatched_rate:.0f} % of the tuned model's answers match no label",
                      "check the prompt template matches training; consider eval.label_ranking: true"))
    if x.rejected_rows:
        out.append(_f("EVL042", "eval.rejected_rows", Severity.WARNING,
                      f"{x.rejected_rows} test row(s) could not be read and are missing from every metric",
                      "run `tunerail doctor` on the test file; the frozen test set should load completely",
                      rejected=x.rejected_rows))
    return out


HUMAN_CODES = ("EVL050", "EVL051", "EVL052", "EVL053")


def check_human(criteria: Any, human: dict[str, Any] | None) -> list[Finding]:
    """``criteria.human`` on the blind review (`tunerail review results`); nothing when not required.

    The win rate is the tuned system's wins / (wins + losses) over every pair it is in, judged on
    the Wilson lower bound (``criteria.decision: ci``) or the point value (``point``).
    """
    crit = getattr(criteria, "human", None)
    if crit is None:
        return []
    if not human:
        return [_f("EVL050", "human.missing", Severity.ERROR, "criteria.human is set but there are no review results yet",
                   "run `tunerail review serve RUN_DIR`, let the annotators finish, then `tunerail review results RUN_DIR`")]
    from tunerail.review.results import subject_win_rate

    out = []
    n = human.get("items_reviewed", 0)
    ok = n >= crit.min_items
    out.append(_f("EVL051", "human.min_items", Severity.INFO if ok else Severity.ERROR,
                  f"{'pass' if ok else 'fail'}: {n} item(s) reviewed; criterion >= {crit.min_items}",
                  "none needed" if ok else "have the annotators review more items (or serve more material)",
                  passed=ok, items=n))
    if crit.min_win_rate is not None:
        for w in subject_win_rate(human):
            bound = w["low"] if getattr(criteria, "decision", "ci") == "ci" else w["value"]
            ok = bound is not None and w["n"] > 0 and bound >= crit.min_win_rate
            value = "no decided votes" if w["value"] is None else (
                f"{100 * w['value']:.1f} % (95 % CI {100 * w['low']:.1f}-{100 * w['high']:.1f} %)")
            out.append(_f("EVL052", "human.win_rate", Severity.INFO if ok else Severity.ERROR,
                          f"{'pass' if ok else 'fail'}: reviewers prefer {w['system']} over {w['against']} in {value} "
                          f"of {w['n']} decided votes ({w['ties']} ties); criterion >= {100 * crit.min_win_rate:.0f} %",
                          "none needed" if ok else "read the most disagreed and the losing items; more reviewed items "
                          "narrow the interval", passed=ok, **{k: w[k] for k in ("system", "against", "value", "low", "high", "n")}))
    if crit.min_alpha is not None:
        agr = (human.get("agreement") or {}).get("preference") or {}
        alpha = agr.get("alpha")
        if alpha is None:
            trivially = agr.get("percent") == 1.0 and agr.get("units", 0) > 0
            out.append(_f("EVL053", "human.agreement", Severity.WARNING if trivially else Severity.ERROR,
                          f"preference agreement: alpha undefined ({agr.get('undefined') or 'no agreement data'})",
                          "none needed (every overlapping vote agrees)" if trivially else
                          "serve with two or more annotators and review.overlap > 0, so some items are rated twice",
                          passed=trivially, percent=agr.get("percent"), units=agr.get("units", 0)))
        else:
            ok = alpha >= crit.min_alpha
            out.append(_f("EVL053", "human.agreement", Severity.INFO if ok else Severity.ERROR,
                          f"{'pass' if ok else 'fail'}: preference Krippendorff alpha {alpha:.3f} (raw agreement "
                          f"{100 * agr['percent']:.0f} % on {agr['units']} items rated twice); criterion >= {crit.min_alpha}",
                          "none needed" if ok else "reviewers disagree: sharpen the rubric descriptions, calibrate on "
                          "the most disagreed items, then review again", passed=ok, alpha=alpha, percent=agr["percent"]))
    return out
