"""The verdict: READY only when every criterion fixed before training passes and nothing blocks.

Each reason is a shared ``Finding`` (codes EVL0xx) so the report, the CLI and CI read the same
list. Passing criteria are recorded as ``info`` findings: the report shows every criterion with
pass/fail, not just the failures. READY <=> no ``error`` finding.

| code   | check                       | severity | when |
| EVL001 | criteria.threshold          | error    | main metric below ``criteria.threshold`` (CI lower bound by default) |
| EVL002 | criteria.min_improvement    | error    | gain over the reference baseline below ``criteria.min_improvement`` |
| EVL003 | criteria.significance       | warning  | the improvement's 95 % CI includes 0 |
| EVL004 | criteria.margin             | error    | test-set CI (larger side; Wilson for proportions) wider than ``criteria.margin`` |
| EVL005 | criteria.per_class_floor    | error    | a class's recall below ``criteria.per_class_floor`` |
| EVL006 | forgetting.budget           | error    | general-suite relative drop above ``criteria.max_forgetting`` |
| EVL007 | forgetting.skipped          | warning  | the forgetting suite was switched off or had no tuned model |
| EVL008 | criteria.missing            | error    | neither ``criteria.threshold`` nor ``criteria.min_improvement`` is set |
| EVL010 | criteria.edited             | error    | criteria hash differs from the one frozen at split time |
| EVL011 | criteria.unverified         | warning  | no split.json given: criteria and test set not checked as frozen |
| EVL020 | doctor.unresolved           | error    | doctor errors were passed in and are unresolved |
| EVL021 | leakage.found               | error    | leakage between test and train/validation |
| EVL030 | judge.prefers_base          | error    | the judge prefers the base model (consistent wins) |
| EVL031 | judge.position_bias         | warning  | judge winners change when answers swap (< 60 % consistent) |
| EVL032 | judge.parse_failures        | warning  | judge replies that could not be parsed or requests that failed (error above half the calls) |
| EVL040 | eval.no_adapter             | warning  | no fine-tuned adapter: the base model is judged against itself |
| EVL041 | eval.unmatched_outputs      | warning  | > 20 % of generated answers match no label |
| EVL042 | eval.rejected_rows          | warning  | test rows that could not be read were left out of every metric |
| EVL050 | baseline.not_beaten         | error    | a baseline (cheap classifier, nearest neighbour, base model variant) is not beaten by the CI |
| EVL051 | baseline.skipped            | warning  | no training split given: the cheap baselines could not be fitted |
| EVL052 | baseline.failed             | warning  | an alternative raised while fitting: named with its error, not compared |
| EVL053 | baseline.slow               | warning  | the local alternatives took more than 10 % of the eval step (``eval/alternatives/budget.py``) |
| EVL054 | baseline.cut                | error    | the tuned model beats an alternative only as the time budget cut it, before its early stopping said it had converged |
| EVL060 | human.missing               | error    | ``criteria.human`` is set but no review results exist yet |
| EVL061 | human.min_items             | error    | fewer reviewed items than ``criteria.human.min_items`` |
| EVL062 | human.win_rate              | error    | tuned win rate (Wilson CI lower bound, ties excluded) below ``min_win_rate`` |
| EVL063 | human.agreement             | error    | preference alpha below ``min_alpha``, or not computable (no overlap) |

Decisions. ``criteria.decision: ci`` (default): a threshold passes when the 95 % CI lower bound of
the metric clears it, an improvement when the lower bound of the paired gain does, a baseline is
beaten when the lower bound of the paired gain is above 0. ``point`` uses the point estimates;
every message says which rule decided. ``criteria.baseline: strongest`` (default) measures
``min_improvement`` against the strongest baseline on the main metric; ``base`` against the
strongest variant of the base model (zero-shot free, ranked, k-shot).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Iterable

from tunerail.config.base import metric_range
from tunerail.eval.verdict_context import check_human, check_judge, check_upstream, cut_baseline
from tunerail.eval.verdict_context import finding as _f
from tunerail.findings import Finding, Severity


class Verdict(StrEnum):
    """READY / NOT READY; a ``str`` enum whose value is what report.json has always held."""

    READY = "READY"
    NOT_READY = "NOT READY"


LOWER_IS_BETTER = {"perplexity", "answer_nll"}


@dataclass
class VerdictInputs:
    """Everything the verdict depends on, already computed (pure function input)."""

    metric: str
    tuned: dict[str, dict[str, Any]]  # metric -> Estimate dict (value, low, high, n)
    base: dict[str, dict[str, Any]]
    improvement: dict[str, Any] | None  # paired estimate of tuned - base on the main metric
    per_class: list[dict[str, Any]] | None = None
    forgetting: dict[str, Any] | None = None
    forgetting_enabled: bool = True
    has_adapter: bool = True
    criteria_state: str = "unverified"  # "frozen" | "edited" | "unverified"
    doctor_findings: list[Finding] | None = None
    leakage_findings: list[Finding] | None = None
    judge: dict[str, Any] | None = None
    unmatched_rate: float | None = None
    rejected_rows: int = 0
    # Every baseline: {name, label, kind ("llm" | "cheap"), estimate, gain} where ``estimate`` is the
    # baseline's main-metric Estimate dict and ``gain`` the paired Estimate dict of tuned - baseline.
    baselines: list[dict[str, Any]] | None = None
    reference: str = "base"  # the baseline ``improvement`` is measured against
    reference_label: str = "the base model"
    baselines_skipped: str | None = None  # why no cheap baseline was fitted
    baselines_failed: list[dict[str, Any]] | None = None  # alternatives that raised: {name, label, library, error}
    constrained: bool = False  # the verdict model answered with label-constrained decoding
    human: dict[str, Any] | None = None  # `tunerail review results` (review/results.json)


def decide(criteria: Any, inputs: VerdictInputs) -> tuple[Verdict, list[Finding]]:
    """Return (READY | NOT READY, findings with every reason)."""
    findings = [
        *check_has_criterion(criteria),
        *check_threshold(criteria, inputs),
        *check_improvement(criteria, inputs),
        *check_baselines(criteria, inputs),
        *check_margin(criteria, inputs),
        *check_per_class(criteria, inputs),
        *check_forgetting(criteria, inputs),
        *check_criteria_state(inputs),
        *check_upstream(inputs.doctor_findings, inputs.leakage_findings),
        *check_judge(inputs.judge),
        *check_run(inputs),
        *check_human(criteria, inputs.human),
    ]
    return verdict_of(findings), findings


def is_ready(findings: Iterable[Finding]) -> bool:
    """READY <=> no ``error`` finding: the one rule, for the eval and for a verdict re-decided after review."""
    return not any(f.severity == Severity.ERROR for f in findings)


def verdict_of(findings: Iterable[Finding]) -> Verdict:
    return Verdict.READY if is_ready(findings) else Verdict.NOT_READY


def _passes(metric: str, value: float, bound: float) -> bool:
    return value <= bound if metric in LOWER_IS_BETTER else value >= bound


def _decision(criteria: Any) -> str:
    return getattr(criteria, "decision", "ci")


def _rule(criteria: Any) -> str:
    return (
        "decided on the 95 % CI lower bound (criteria.decision: ci)"
        if _decision(criteria) == "ci"
        else "decided on the point estimate (criteria.decision: point)"
    )


def oriented_gain(metric: str, est: dict[str, Any]) -> tuple[float, float, float]:
    """(gain, low, high) of a paired tuned - baseline estimate, positive = tuned better (any metric direction)."""
    if metric in LOWER_IS_BETTER:
        return -est["value"], -est["high"], -est["low"]
    return est["value"], est["low"], est["high"]


def check_has_criterion(criteria: Any) -> list[Finding]:
    if criteria.threshold is not None or criteria.min_improvement is not None:
        return []
    return [
        _f(
            "EVL008",
            "criteria.missing",
            Severity.ERROR,
            "no success criterion: neither criteria.threshold nor criteria.min_improvement is set, so READY would certify nothing",
            "set criteria.threshold and/or criteria.min_improvement before the split",
        )
    ]


def check_threshold(criteria: Any, x: VerdictInputs) -> list[Finding]:
    if criteria.threshold is None:
        return []
    est = x.tuned[x.metric]
    lower = x.metric in LOWER_IS_BETTER
    # ci: the pessimistic end of the interval must clear the bar (the upper bound for perplexity)
    decisive = est["value"] if _decision(criteria) == "point" else (est["high"] if lower else est["low"])
    ok = _passes(x.metric, decisive, criteria.threshold)
    cmp = "<=" if lower else ">="
    msg = (
        f"{x.metric} = {est['value']:.4f} (95 % CI {est['low']:.4f}-{est['high']:.4f}, n={est['n']}); "
        f"criterion {cmp} {criteria.threshold}, {_rule(criteria)}"
    )
    if ok:
        return [
            _f(
                "EVL001",
                "criteria.threshold",
                Severity.INFO,
                "pass: " + msg,
                "none needed",
                passed=True,
                decision=_decision(criteria),
                **est,
            )
        ]
    near = _passes(x.metric, est["value"], criteria.threshold)
    return [
        _f(
            "EVL001",
            "criteria.threshold",
            Severity.ERROR,
            "fail: " + msg + ("; the point estimate clears it but the interval does not" if near else ""),
            (
                "the test set cannot confirm the threshold: add test rows (the interval narrows with 1/sqrt(n)) or improve the model"
                if near
                else "improve the data or training (more rows per class, more epochs, a higher learning rate), "
                "or revisit the threshold BEFORE the next split, not after seeing this number"
            ),
            passed=False,
            decision=_decision(criteria),
            **est,
        )
    ]


def check_improvement(criteria: Any, x: VerdictInputs) -> list[Finding]:
    out: list[Finding] = []
    imp = x.improvement
    if imp is None:
        return out
    gain, lo, hi = oriented_gain(x.metric, imp)
    text = f"gain over {x.reference_label} on {x.metric} = {gain:+.4f} (95 % CI {lo:+.4f} to {hi:+.4f}"
    if "p_value" in imp:
        text += f", {imp.get('test', 'paired test')} p = {imp['p_value']:.3g}"
    text += ")"
    if criteria.min_improvement is not None:
        decisive = gain if _decision(criteria) == "point" else lo
        ok = decisive >= criteria.min_improvement
        out.append(
            _f(
                "EVL002",
                "criteria.min_improvement",
                Severity.INFO if ok else Severity.ERROR,
                ("pass: " if ok else "fail: ")
                + text
                + f"; criterion >= {criteria.min_improvement}, "
                + _rule(criteria)
                + f"; baseline: {getattr(criteria, 'baseline', 'base')}",
                "none needed"
                if ok
                else "the fine-tune does not beat the baseline by enough: check the "
                "loss curves, the prompt template, and whether that baseline suffices for the task",
                passed=ok,
                gain=gain,
                low=lo,
                high=hi,
                reference=x.reference,
                decision=_decision(criteria),
            )
        )
    if lo <= 0:
        out.append(
            _f(
                "EVL003",
                "criteria.significance",
                Severity.WARNING,
                text + ": the confidence interval includes no improvement",
                "collect a larger test set or treat the gain as unproven",
                gain=gain,
                low=lo,
                high=hi,
            )
        )
    return out


def check_baselines(criteria: Any, x: VerdictInputs) -> list[Finding]:
    """The tuned model must beat every baseline a team could ship instead (paired gain, by the CI)."""
    return [*_baselines_not_compared(x), *(_baseline_finding(criteria, x, b) for b in x.baselines or [])]


def _baselines_not_compared(x: VerdictInputs) -> list[Finding]:
    """EVL051 when no alternative could be fitted, EVL052 per alternative that raised (named, never dropped)."""
    out: list[Finding] = []
    if x.baselines_skipped:
        out.append(
            _f(
                "EVL051",
                "baseline.skipped",
                Severity.WARNING,
                f"cheap baselines not computed: {x.baselines_skipped}",
                "pass the training split (`tunerail eval --train train.jsonl`; `tunerail run` does) so "
                "TF-IDF / embedding classifiers or the nearest-neighbour answer can be compared",
            )
        )
    for b in x.baselines_failed or []:
        out.append(
            _f(
                "EVL052",
                "baseline.failed",
                Severity.WARNING,
                f"alternative {b['label']} ({b['name']}, {b.get('library') or 'unknown library'}) failed and was not compared: {b['error']}",
                "fix the error (a missing library: pip install it) and re-run eval: READY only means something "
                "against the alternatives that ran",
                baseline=b["name"],
                error=b["error"],
            )
        )
    return out


def _baseline_finding(criteria: Any, x: VerdictInputs, b: dict[str, Any]) -> Finding:
    """EVL050 for one baseline: pass (info) when the paired gain clears 0 by the decision rule, else an error with the fix."""
    tuned = x.tuned[x.metric]
    gain, lo, hi = oriented_gain(x.metric, b["gain"])
    decisive = gain if _decision(criteria) == "point" else lo
    est = b["estimate"]
    lib = f", {b['library']}" if b.get("library") else ""
    scores = (
        f"{b['label']} ({b['name']}{lib}) scores {x.metric} {est['value']:.4f} (95 % CI {est['low']:.4f}-"
        f"{est['high']:.4f}), the fine-tuned model {tuned['value']:.4f} ({tuned['low']:.4f}-"
        f"{tuned['high']:.4f}); paired gain {gain:+.4f} (95 % CI {lo:+.4f} to {hi:+.4f}), {_rule(criteria)}"
    )
    if decisive > 0 and (b.get("details") or {}).get("stopped") == "time_budget":
        return cut_baseline(b, scores, gain=gain, low=lo, high=hi)  # EVL054: a win over a cut alternative proves nothing
    if decisive > 0:
        return _f(
            "EVL050",
            "baseline.not_beaten",
            Severity.INFO,
            "pass: beats " + scores,
            "none needed",
            passed=True,
            baseline=b["name"],
            gain=gain,
            low=lo,
            high=hi,
        )
    if b.get("kind") == "hosted":
        fix = (
            f"{b['label']} scores {est['value']:.3f} (CI {est['low']:.3f}-{est['high']:.3f}) with the same prompt: ship it "
            f"({b.get('ship') or 'no training needed'}), or fix the fine-tune"
        )
    elif b.get("kind") == "cheap":
        how = f"{b['ship']}; " if b.get("ship") else ""
        fix = (
            f"ship the cheap model: {b['label']} ({b.get('library') or b['name']}) trained on your data scores "
            f"{est['value']:.3f} (CI {est['low']:.3f}-{est['high']:.3f}): ship it ({how}cheaper to run and at least "
            "as good here), or fix the fine-tune (more rows, more epochs, a higher learning rate, constrained decoding)"
        )
    else:
        fix = (
            f"use the base model as scored by {b['label']} (no training needed), or fix the fine-tune "
            "(check the loss curves, the prompt template and the learning rate)"
        )
    return _f(
        "EVL050",
        "baseline.not_beaten",
        Severity.ERROR,
        "fail: not beaten: " + scores,
        fix,
        passed=False,
        baseline=b["name"],
        gain=gain,
        low=lo,
        high=hi,
    )


def check_margin(criteria: Any, x: VerdictInputs) -> list[Finding]:
    from tunerail.stats import margin_of

    est = x.tuned[x.metric]
    half = margin_of(est)  # the larger side: a Wilson interval at 0 or 1 is one-sided
    allowed = criteria.margin * metric_range(x.metric)  # a share of the metric's range (chrF 0-100: 0.05 -> 5 points)
    ok = half <= allowed
    how = est.get("interval") or "bootstrap"
    msg = (
        f"test set estimates {x.metric} to +/- {half:.4f} (larger side of the 95 % {how} interval, n={est['n']}); criterion <= {allowed:g}"
    )
    return [
        _f(
            "EVL004",
            "criteria.margin",
            Severity.INFO if ok else Severity.ERROR,
            ("pass: " if ok else "fail: ") + msg,
            "none needed"
            if ok
            else "the test set is too small to decide at this precision: add test rows "
            "(the half-width shrinks with 1/sqrt(n)) or accept a wider criteria.margin before splitting",
            passed=ok,
            half_width=half,
        )
    ]


def check_per_class(criteria: Any, x: VerdictInputs) -> list[Finding]:
    if criteria.per_class_floor is None or not x.per_class:
        return []
    low = [c for c in x.per_class if c["support"] and c["recall"] < criteria.per_class_floor]
    if not low:
        return [
            _f(
                "EVL005",
                "criteria.per_class_floor",
                Severity.INFO,
                f"pass: every class has recall >= {criteria.per_class_floor}",
                "none needed",
                passed=True,
            )
        ]
    names = ", ".join(f"{c['label']} ({c['recall']:.2f})" for c in low[:10])
    return [
        _f(
            "EVL005",
            "criteria.per_class_floor",
            Severity.ERROR,
            f"fail: {len(low)} class(es) below recall {criteria.per_class_floor}: {names}",
            "add training rows for these classes or check them for label noise (tunerail doctor)",
            passed=False,
            classes=[c["label"] for c in low],
        )
    ]


def check_forgetting(criteria: Any, x: VerdictInputs) -> list[Finding]:
    if not x.forgetting_enabled or x.forgetting is None:
        why = "switched off (eval.forgetting: false)" if not x.forgetting_enabled else "not run (no fine-tuned model)"
        return [
            _f(
                "EVL007",
                "forgetting.skipped",
                Severity.WARNING,
                f"the general-capability suite was {why}",
                "set eval.forgetting: true and pass the adapter to measure what fine-tuning cost",
            )
        ]
    worst = x.forgetting["worst"]
    ok = worst <= criteria.max_forgetting
    parts = ", ".join(f"{k} {100 * v:+.1f} %" for k, v in x.forgetting["relative_change"].items())
    msg = f"general-suite relative degradation: {parts}; worst {100 * worst:.1f} % vs budget {100 * criteria.max_forgetting:.0f} %"
    return [
        _f(
            "EVL006",
            "forgetting.budget",
            Severity.INFO if ok else Severity.ERROR,
            ("pass: " if ok else "fail: ") + msg,
            "none needed"
            if ok
            else "lower the learning rate or epochs, use a smaller LoRA rank, or mix general rows back in (train.replay_ratio)",
            passed=ok,
            worst=worst,
        )
    ]


def check_criteria_state(x: VerdictInputs) -> list[Finding]:
    if x.criteria_state == "edited":
        return [
            _f(
                "EVL010",
                "criteria.edited",
                Severity.ERROR,
                "criteria changed after the test set was frozen: the success criteria differ from those frozen "
                "with the test set, so this run cannot be READY",
                "restore the criteria recorded in split.json; changing them after seeing results needs a new split and a fresh test set",
            )
        ]
    if x.criteria_state == "unverified":
        return [
            _f(
                "EVL011",
                "criteria.unverified",
                Severity.WARNING,
                "no split.json given: the test set and criteria could not be checked against the frozen split",
                "pass --split-json (written by `tunerail split`)",
            )
        ]
    return []


def check_run(x: VerdictInputs) -> list[Finding]:
    out = []
    if not x.has_adapter:
        out.append(
            _f(
                "EVL040",
                "eval.no_adapter",
                Severity.WARNING,
                "no fine-tuned adapter given: the base model is evaluated as the candidate",
                "pass --adapter (the folder written by `tunerail train`)",
            )
        )
    if x.unmatched_rate is not None and x.unmatched_rate > 0.2:
        out.append(
            _f(
                "EVL041",
                "eval.unmatched_outputs",
                Severity.WARNING,
                f"{100 * x.unmatched_rate:.0f} % of the tuned model's {'free-generation ' if x.constrained else ''}"
                "answers match no label"
                + (" (the verdict uses label-constrained decoding, which cannot answer outside the label set)" if x.constrained else ""),
                "check the prompt template matches training"
                if x.constrained
                else "check the prompt template matches training; use eval.decoding: constrained or both",
            )
        )
    if x.rejected_rows:
        out.append(
            _f(
                "EVL042",
                "eval.rejected_rows",
                Severity.WARNING,
                f"{x.rejected_rows} test row(s) could not be read and are missing from every metric",
                "run `tunerail doctor` on the test file; the frozen test set should load completely",
                rejected=x.rejected_rows,
            )
        )
    return out
