"""The recommendation rule, as a pure function of the measured candidates.

Recommend the smallest candidate whose task score is not significantly below the best one's (paired
bootstrap on the same rows, one-sided at ``alpha``), among those that pass the licence gate and fit
the budget. When every candidate scores near zero the task score cannot tell them apart, so bits per
byte of the reference answers (lower is better) decides by the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from tunerail import stats as S
from tunerail.findings import Finding, Severity

IndexStat = Callable[[np.ndarray], float]


@dataclass
class Entry:
    """One candidate as the rule sees it."""

    name: str
    params: int
    score: dict[str, Any]  # Estimate dict of the task score (higher is better)
    score_stat: IndexStat  # idx -> task score on rows idx (same rows for every candidate)
    bpb: dict[str, Any]  # Estimate dict of bits per byte (lower is better)
    bpb_stat: IndexStat
    blocked: list[str] = field(default_factory=list)  # why it is not eligible (licence, budget, memory)


@dataclass
class Recommendation:
    recommended: str | None
    reason: str
    decided_by: str  # "task score" or "bits per byte"
    ranking: list[str]
    comparisons: dict[str, dict[str, Any]]  # candidate -> paired difference to the best
    findings: list[Finding]


def _negated(stat: Callable[[Any], float]) -> Callable[[Any], float]:
    """A statistic turned so that higher is better (bits per byte: lower is better)."""
    return lambda idx: -stat(idx)


def recommend(
    entries: list[Entry], n: int, *, alpha: float = 0.05, near_zero: float = 0.05, resamples: int = 1000, seed: int = 13
) -> Recommendation:
    """Apply the rule; SEL030 (a bigger model is not better), SEL031 (all near zero), SEL032 (none eligible)."""
    findings: list[Finding] = []
    all_near_zero = bool(entries) and all(e.score["high"] < near_zero for e in entries)
    if all_near_zero:
        findings.append(_all_near_zero(entries, near_zero))
    # Orient every measure so that higher is better.
    stat: dict[str, Callable[[Any], float]]
    if all_near_zero:
        value = {e.name: -e.bpb["value"] for e in entries}
        stat = {e.name: _negated(e.bpb_stat) for e in entries}
        decided_by = "bits per byte"
    else:
        value = {e.name: e.score["value"] for e in entries}
        stat = {e.name: e.score_stat for e in entries}
        decided_by = "task score"
    if not entries:
        return Recommendation(None, "no candidates", decided_by, [], {}, findings)
    best_all = max(entries, key=lambda e: (value[e.name], -e.params))
    comparisons = {}
    for e in entries:
        diff = S.paired_statistic(stat[best_all.name], stat[e.name], n, resamples=resamples, seed=seed)
        comparisons[e.name] = {
            **diff.to_dict(),
            "versus": best_all.name,
            "measure": decided_by,
            "significantly_below": e.name != best_all.name and diff.extra["p_value"] < alpha,
        }

    # Not significantly below the best: smallest first (the rule's order), bits per byte breaking ties;
    # then the rest by their measure.
    def rank_key(e: Entry) -> tuple:
        below = comparisons[e.name]["significantly_below"]
        return (below, -value[e.name] if below else e.params, e.bpb["value"])

    ranking = [e.name for e in sorted(entries, key=rank_key)]
    eligible = [e for e in entries if not e.blocked]
    if not eligible:
        findings.append(
            Finding(
                "select.none_eligible",
                Severity.ERROR,
                "no candidate passes the licence gate and fits the budget: "
                + "; ".join(f"{e.name}: {', '.join(e.blocked)}" for e in entries),
                "add a permissively licensed candidate that fits, acknowledge a reviewed licence, or raise the budget",
                code="SEL032",
            )
        )
        return Recommendation(None, "no eligible candidate", decided_by, ranking, comparisons, findings)
    best = max(eligible, key=lambda e: (value[e.name], -e.params))
    close = []
    for e in eligible:
        if e is best:
            close.append(e)
            continue
        diff = S.paired_statistic(stat[best.name], stat[e.name], n, resamples=resamples, seed=seed)
        if diff.extra["p_value"] >= alpha:
            close.append(e)
    pick = min(close, key=lambda e: (e.params, e.bpb["value"]))
    measure = decided_by
    if measure == "task score" and pick.score["high"] < near_zero and best_all.blocked and comparisons[pick.name]["significantly_below"]:
        # The gate left only models that cannot do the task while a blocked one can: training the
        # near-zero one would be the gate picking a model by elimination, not a recommendation.
        e = best_all
        findings.append(_only_near_zero_eligible(pick, e, near_zero))
        why = f"no eligible candidate can do the task; {e.name} can but is blocked ({', '.join(e.blocked)})"
        return Recommendation(None, why, decided_by, ranking, comparisons, findings)
    shown = _shown(measure)
    reason = _reason(pick, best, measure, alpha)
    findings += [_bigger_not_better(e, pick, measure, shown) for e in eligible if e.params > pick.params and e in close and e is not pick]
    skipped = [e for e in entries if e.blocked and value[e.name] > value[pick.name]]
    for e in skipped:
        reason += f"; {e.name} scores higher but is not eligible ({', '.join(e.blocked)})"
    return Recommendation(pick.name, reason, decided_by, ranking, comparisons, findings)


def _shown(measure: str) -> Callable[[Entry], str]:
    """How a candidate's measure reads in a message: the value and its 95 % CI."""
    if measure == "task score":
        return lambda e: f"{e.score['value']:.3f} [{e.score['low']:.3f}, {e.score['high']:.3f}]"
    return lambda e: f"{e.bpb['value']:.3f} bits/byte [{e.bpb['low']:.3f}, {e.bpb['high']:.3f}]"


def _reason(pick: Entry, best: Entry, measure: str, alpha: float) -> str:
    shown = _shown(measure)
    if pick is best:
        return f"{pick.name} has the best {measure} among eligible candidates: {shown(pick)}"
    return (
        f"{pick.name} ({pick.params / 1e6:.0f} M params) is the smallest eligible candidate whose {measure} "
        f"{shown(pick)} is not significantly below the best, {best.name} {shown(best)} (paired bootstrap, "
        f"alpha {alpha:g})"
    )


def _all_near_zero(entries: list[Entry], near_zero: float) -> Finding:
    return Finding(
        "select.all_near_zero",
        Severity.WARNING,
        f"every candidate scores near zero on the task (95 % CI upper bound below {near_zero:g}): the base models "
        "cannot do it yet, so bits per byte of the reference answers decides",
        "the task needs training data (fine-tune) or a different, larger or domain model; check the prompt too",
        code="SEL031",
        details={"scores": {e.name: e.score for e in entries}},
    )


def _only_near_zero_eligible(pick: Entry, e: Entry, near_zero: float) -> Finding:
    """SEL033: the gate left only near-zero candidates while the blocked ``e`` can do the task."""
    return Finding(
        "select.only_near_zero_eligible",
        Severity.ERROR,
        f"every eligible candidate scores near zero (best: {pick.name} {pick.score['value']:.3f}, 95 % CI upper bound "
        f"below {near_zero:g}) while {e.name} scores significantly higher ({e.score['value']:.3f} "
        f"[{e.score['low']:.3f}, {e.score['high']:.3f}]) but is not eligible: {', '.join(e.blocked)}",
        "lift what blocks the better candidate (raise budget.max_hours, acknowledge a reviewed licence), or pin "
        "model.base to train a model yourself",
        code="SEL033",
        details={"eligible_best": pick.name, "blocked_better": e.name, "blocked_by": list(e.blocked)},
    )


def _bigger_not_better(e: Entry, pick: Entry, measure: str, shown: Callable[[Entry], str]) -> Finding:
    """SEL030: ``e`` is larger than the pick but not significantly better."""
    return Finding(
        "select.bigger_not_better",
        Severity.INFO,
        f"{e.name} ({e.params / 1e6:.0f} M params) is {e.params / max(pick.params, 1):.1f}x the size of {pick.name} "
        f"but not significantly better on {measure}: {shown(e)} vs {shown(pick)}",
        f"train {pick.name}: it is cheaper to train and serve",
        code="SEL030",
        details={"larger": e.name, "recommended": pick.name},
    )
