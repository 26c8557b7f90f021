"""Eval stage 5: estimates with 95 % CIs, the paired gain of the tuned model over every baseline, the reference.

The baseline table is what the report shows side by side and what the verdict reads: each row has
the baseline's estimate on the main metric and the tuned model's paired gain over it (failed
alternatives last, with their error). The tuned model's free-generation row (kind ``tuned``) is no
baseline: it has no gain but the paired ``difference`` the verdict's decoding (label trie or span
copy) makes over it. The reference is the strongest row ``min_improvement`` is
measured against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from tunerail import stats as S
from tunerail.eval.alternatives import AlternativesRun, Fitted
from tunerail.eval.verdict import LOWER_IS_BETTER
from tunerail.scoring import ModelScores

BASE_LABELS = {
    "base": "base model, zero-shot {how}",
    "base_ranked": "base model, zero-shot label ranking",
    "base_few_shot_ranked": "base model, {k}-shot label ranking",
    "base_few_shot": "base model, {k}-shot {how}",
    "tuned_free": "fine-tuned model, {free}",
}


def llm_labels(shots: int, num_beams: int = 1, decoding: str = "free") -> dict[str, str]:
    """The LLM rows' names in the table, saying how they were decoded (``eval.num_beams``, keyword cover)."""
    free = "free generation" if num_beams == 1 else f"{num_beams}-beam search, the likeliest beam"
    how = f"{num_beams}-beam search, the beam using the most keywords" if decoding == "keyword_cover" else free
    return {name: text.format(k=shots, how=how, free=free) for name, text in BASE_LABELS.items()}


@dataclass(frozen=True)
class Draws:
    """How the CIs redraw the test rows: the number of resamples, and each row's input (rows sharing one are drawn together)."""

    resamples: int
    groups: Sequence[Any] | None = None


def baseline_table(
    scored: dict[str, ModelScores],
    metrics_out: dict[str, Any],
    metric: str,
    draws: Draws,
    cheap: Sequence[Fitted],
    labels: Sequence[str],
    names: Mapping[str, str],
    same_as_tuned: set[str],
) -> list[dict[str, Any]]:
    """Every baseline on the main metric with the paired gain of the tuned model over it; failed alternatives last.

    ``names``: the LLM rows' labels (:func:`llm_labels`); others are named by their key.
    """
    resamples, groups = draws.resamples, draws.groups
    rows = []
    cheap_by_name = {b.name: b for b in cheap}
    for name in scored:
        if name == "tuned":
            continue
        kind = cheap_by_name[name].kind if name in cheap_by_name else ("tuned" if name == "tuned_free" else "llm")
        label = cheap_by_name[name].label if name in cheap_by_name else names.get(name, name)
        est = metrics_out[name].get(metric)
        gain = None
        if est is not None and kind != "tuned" and name not in same_as_tuned:
            gain, _ = compare(scored["tuned"], scored[name], metric, resamples, "", groups)
        row = {"name": name, "label": label, "kind": kind, "estimate": est, "gain": gain}
        if kind == "tuned" and est is not None:  # the verdict's decoding minus this one (free), paired over the rows
            row["difference"], _ = compare(scored["tuned"], scored[name], metric, resamples, "", groups)
        if name in cheap_by_name:
            b = cheap_by_name[name]
            row.update(library=b.library, ship=b.ship, seconds=round(b.seconds, 2), details=b.details)
        if labels:
            row["unmatched"] = scored[name].details["report"]["unmatched"]
        rows.append(row)
    return rows + [{**failed_row(b), "kind": b.kind, "estimate": None, "gain": None} for b in cheap if b.error is not None]


def failed_row(b: Fitted) -> dict[str, Any]:
    return {"name": b.name, "label": b.label, "library": b.library, "error": b.error, "seconds": round(b.seconds, 2)}


def alternatives_summary(alts: AlternativesRun) -> dict[str, Any]:
    """What report.json records about the alternatives stage beside the table: shape, skips, failures, fit time."""
    return {
        "shape": alts.shape,
        "skipped": alts.skipped,
        "fitted": [b.name for b in alts.scored],
        "failed": [failed_row(b) for b in alts.failed],
        "fit_seconds": round(sum(float(b.details.get("fit_seconds", b.seconds)) for b in alts.fitted if b.kind == "cheap"), 2),
        "hosted_seconds": round(sum(b.seconds for b in alts.fitted if b.kind == "hosted"), 2),
        "budget_s": None if alts.budget_s is None else round(alts.budget_s, 1),
        "llm_rows": alts.llm_rows,  # rows the LLM stage computed that the registry lists as alternatives (base_few_shot)
    }


def reference(baselines: Sequence[dict[str, Any]], metric: str, which: str) -> str:
    """The baseline ``min_improvement`` is measured against: the strongest on the main metric."""
    pool = [b for b in baselines if b["gain"] is not None and (which == "strongest" or b["kind"] == "llm")]
    if not pool:
        return "base"
    sign = -1 if metric in LOWER_IS_BETTER else 1
    return str(max(pool, key=lambda b: (sign * b["estimate"]["value"], b["name"] == "base"))["name"])


def estimates(s: ModelScores, n: int, resamples: int, groups: Sequence[Any] | None = None) -> dict[str, dict[str, Any]]:
    """Every metric of one model with its 95 % CI: Wilson for 0/1 scores (accuracy...), bootstrap otherwise.

    ``groups`` (the rows' inputs): rows that share an input (one answer scored against several references)
    are redrawn together, so they count as one observation.
    """
    out = {}
    for name, arr in s.per_example.items():
        out[name] = S.mean_ci(arr, resamples=resamples, groups=groups).to_dict()
    for name, fn in s.corpus.items():
        out[name] = S.bootstrap_statistic(fn, n, resamples=resamples, groups=groups).to_dict()
    return out


def compare(
    tuned: ModelScores, base: ModelScores, metric: str, resamples: int, task: str, groups: Sequence[Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Paired improvement on the main metric (over the same rows), and per-metric paired tests for the report."""
    if metric in tuned.per_example:
        imp = S.paired_bootstrap(tuned.per_example[metric], base.per_example[metric], resamples=resamples, groups=groups)
    else:
        imp = S.paired_statistic(tuned.corpus[metric], base.corpus[metric], len(tuned.primary), resamples=resamples, groups=groups)
    sig: dict[str, Any] = {"main": imp.to_dict()}
    if task == "classification":
        sig["mcnemar"] = S.mcnemar(tuned.per_example["accuracy"] > 0, base.per_example["accuracy"] > 0)
        if metric == "accuracy":
            imp.extra.update({"p_value": sig["mcnemar"]["p_value"], "test": sig["mcnemar"]["test"]})
    return imp.to_dict(), sig
