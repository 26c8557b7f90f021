"""Per-window drift tests against the training split, corrected as one family.

:func:`build_reference` computes everything the training side needs once (embeddings, the
leave-one-out nearest-neighbour threshold, lengths, languages, labels); :func:`test_window`
runs the input and output tests on one window; :func:`decide` applies the family-wise
correction over every test of every window and turns the results into MON0xx findings.

Multiple testing: each window runs up to 8 tests; the whole family (tests x windows) is held at
``monitor.alpha`` by Bonferroni (default) or Holm. A stable stream therefore raises an alert
with probability at most ``alpha`` however many windows it is cut into, provided every p-value
is valid under no drift (traffic exchangeable with the training rows). The embedding tests are
exact permutation tests whose statistic is recomputed in full for each permutation: MMD, the
domain classifier (refitted, see :func:`~tunerail.monitor.stats.classifier_test`) and the
out-of-scope count (threshold re-estimated, see
:func:`~tunerail.monitor.stats.out_of_scope_permutation_test`; with a test split, Fisher's exact
test against it); KS and chi-square are scipy's, conservative on ties and pooled rare categories.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from tunerail.config import MonitorConfig
from tunerail.data.records import RowRef

from tunerail.findings import Finding, Severity
from tunerail.monitor.stats import (
    TestResult,
    classifier_test,
    correct,
    distribution_test,
    length_test,
    nearest_distances,
    out_of_scope_permutation_test,
    out_of_scope_test,
    top_neighbours,
)

Embed = Callable[[Sequence[str]], np.ndarray]
Lengths = Callable[[Sequence[str]], list[int]]
Languages = Callable[[Sequence[str]], list[str | None]]


class Measures(NamedTuple):
    """What every drift test measures on a text: its embedding, its token length, its language."""

    embed: Embed
    lengths: Lengths
    languages: Languages


# Neighbours kept per training row for the out-of-scope permutation test (a permuted training part
# holds one of a row's 32 nearest with probability 1 - (1 - share)^32; the rare miss is computed exactly).
NEIGHBOURS = 32

# code, dotted name, what drifted (for the alert text)
TESTS: dict[str, tuple[str, str]] = {
    "mmd": ("MON001", "input.embedding_mmd"),
    "domain_classifier": ("MON002", "input.domain_classifier"),
    "token_length": ("MON003", "input.token_length"),
    "language": ("MON004", "input.language"),
    "out_of_scope": ("MON005", "input.out_of_scope"),
    "label_vs_train": ("MON010", "output.label_distribution_train"),
    "label_vs_test": ("MON011", "output.label_distribution_test"),
    "answer_length": ("MON015", "output.answer_length"),
}


@dataclass
class Reference:
    """The training side, computed once and shared by every window."""

    prompts: list[str]
    embeddings: np.ndarray  # all training rows (out-of-scope distances)
    sample: np.ndarray  # indices of the rows MMD and the classifier use (at most reference_max)
    threshold: float  # leave-one-out NN distance at ``quantile``
    quantile: float
    lengths: list[int]
    languages: Counter
    labels: Counter = field(default_factory=Counter)
    test_labels: Counter = field(default_factory=Counter)
    answer_lengths: list[int] = field(default_factory=list)
    control_distances: np.ndarray | None = None  # the frozen test set's NN distances to train
    neighbours: tuple[np.ndarray, np.ndarray] | None = None  # leave-one-out top-k (indices, cosines), no control only


def build_reference(
    prompts: Sequence[str],
    *,
    measures: Measures,
    mc: MonitorConfig,
    labels: Sequence[str] = (),
    test_labels: Sequence[str] = (),
    answers: Sequence[str] = (),
    control_prompts: Sequence[str] = (),
) -> Reference:
    """The training side, measured once: ``mc.oos_quantile`` of the leave-one-out distances, a ``mc.reference_max`` sample."""
    embed, lengths, languages = measures
    quantile, reference_max, seed = mc.oos_quantile, mc.reference_max, mc.seed
    emb = embed(list(prompts))
    neighbours = top_neighbours(emb, emb, NEIGHBOURS, exclude_self=True)
    loo = 1.0 - neighbours[1][:, 0]
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(emb), size=min(len(emb), reference_max), replace=False))
    control = nearest_distances(emb, embed(list(control_prompts)))[0] if control_prompts else None
    return Reference(
        list(prompts),
        emb,
        sample,
        float(np.quantile(loo, quantile)),
        quantile,
        lengths(list(prompts)),
        Counter(x for x in languages(list(prompts)) if x),
        Counter(labels),
        Counter(test_labels),
        lengths(list(answers)) if answers else [],
        control,
        None if control is not None else neighbours,
    )


@dataclass
class Window:
    """One slice of traffic: successful requests in log order."""

    index: int
    rows: list[dict[str, Any]]  # traffic records
    lines: list[int]  # 1-based position in the log (for RowRef)
    start: str | None = None
    end: str | None = None

    @property
    def prompts(self) -> list[str]:
        return [str(r.get("prompt", "")) for r in self.rows]

    @property
    def outputs(self) -> list[str | None]:
        return [r.get("output") if isinstance(r.get("output"), str) else None for r in self.rows]


@dataclass
class WindowResult:
    window: Window
    tests: list[TestResult]
    rates: dict[str, float]
    oos_examples: list[dict[str, Any]]
    no_label_examples: list[dict[str, Any]]
    rejected: list[bool] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def alert(self) -> bool:
        return any(self.rejected)

    def to_dict(self) -> dict[str, Any]:
        w = self.window
        return {
            "index": w.index,
            "rows": len(w.rows),
            "start": w.start,
            "end": w.end,
            "alert": self.alert,
            "rates": self.rates,
            "tests": [
                {
                    "name": t.name,
                    "code": TESTS[t.name][0],
                    "statistic": t.statistic,
                    "p_value": t.p_value,
                    "effect": t.effect,
                    "significant": bool(r),
                    "details": t.details,
                }
                for t, r in zip(self.tests, self.rejected)
            ],
            "out_of_scope_examples": self.oos_examples,
            "no_label_examples": self.no_label_examples,
        }


def test_window(
    ref: Reference,
    window: Window,
    *,
    measures: Measures,
    mc: MonitorConfig,
    permutations: int,
    labels: Sequence[str] = (),
    task: str = "generation",
    refusal: Callable[[str], bool] | None = None,
) -> WindowResult:
    """Every applicable test on one window (p-values uncorrected; :func:`decide` corrects); ``mc.seed``, ``mc.examples``."""
    from tunerail.monitor.stats import mmd_test

    embed, lengths, languages = measures
    seed, examples = mc.seed, mc.examples

    rng = np.random.default_rng(seed + 7919 * window.index)
    prompts = window.prompts
    emb = embed(prompts)
    ref_emb = ref.embeddings[ref.sample]
    tests: list[TestResult] = [
        mmd_test(ref_emb, emb, permutations=permutations, rng=rng),
        classifier_test(ref_emb, emb, permutations=permutations, rng=rng),
    ]
    tests.append(length_test(ref.lengths, lengths(prompts)))
    lang = distribution_test(ref.languages, Counter(x for x in languages(prompts) if x), "language")
    if lang is not None:
        tests.append(lang)
    dist, nn = nearest_distances(ref.embeddings, emb)
    if ref.control_distances is not None and len(ref.control_distances):
        tests.append(out_of_scope_test(ref.threshold, ref.quantile, dist, ref.control_distances))
    else:
        assert ref.neighbours is not None
        tests.append(out_of_scope_permutation_test(ref.embeddings, ref.neighbours, emb, ref.quantile, permutations=permutations, rng=rng))
    far = np.argsort(-dist)
    oos_examples = [
        {"line": window.lines[i], "prompt": prompts[i], "distance": round(float(dist[i]), 4), "nearest_training_prompt": ref.prompts[nn[i]]}
        for i in far[:examples]
        if dist[i] > ref.threshold
    ]

    rates: dict[str, float] = {"out_of_scope_share": float(np.mean(dist > ref.threshold))}
    outputs = [o for o in window.outputs if o is not None]
    no_label_examples: list[dict[str, Any]] = []
    if outputs:
        rates["empty_answer_rate"] = float(np.mean([not o.strip() for o in outputs]))
        if refusal is not None:
            rates["refusal_rate"] = float(np.mean([refusal(o) for o in outputs]))
        if ref.answer_lengths:
            tests.append(length_test(ref.answer_lengths, lengths(outputs), "answer_length"))
    if task == "classification" and outputs:
        from tunerail.metrics import match_label

        predicted = [
            r.get("label") if "label" in r else match_label(r.get("output") or "", labels)
            for r in window.rows
            if isinstance(r.get("output"), str)
        ]
        rates["no_label_rate"] = float(np.mean([p is None for p in predicted]))
        no_label_examples = [
            {"line": ln, "prompt": r.get("prompt"), "output": r.get("output")}
            for r, ln in zip(window.rows, window.lines)
            if isinstance(r.get("output"), str) and (r.get("label") if "label" in r else match_label(r["output"], labels)) is None
        ][:examples]
        got = Counter(p for p in predicted if p is not None)
        if sum(got.values()) >= 20:
            for name, base in (("label_vs_train", ref.labels), ("label_vs_test", ref.test_labels)):
                if base:
                    res = distribution_test(base, got, name)
                    if res is not None:
                        tests.append(res)
    return WindowResult(window, tests, rates, oos_examples, no_label_examples)


def permutations_needed(alpha: float, m: int, configured: int) -> int:
    """At least enough permutations that p = 1/(B+1) can fall below alpha/m (capped at 20,000)."""
    return int(min(20_000, max(configured, math.ceil(2 * m / alpha))))


def decide(results: list[WindowResult], *, alpha: float, method: str, rates_warn: dict[str, float]) -> list[Finding]:
    """Correct all p-values as one family, set each window's ``rejected`` and return the findings."""
    flat = [(w, i, t.p_value) for w in results for i, t in enumerate(w.tests)]
    rejected = correct([p for _, _, p in flat], alpha, method)
    for w in results:
        w.rejected = [False] * len(w.tests)
    for (w, i, _), r in zip(flat, rejected):
        w.rejected[i] = bool(r)
    m = len(flat)
    findings: list[Finding] = []
    for w in results:
        where = f"window {w.window.index} ({len(w.window.rows)} requests)"
        rows = [RowRef(ln - 1, ln) for ln in w.window.lines[:1]]
        for t, r in zip(w.tests, w.rejected):
            code, check = TESTS[t.name]
            details = {
                "window": w.window.index,
                "statistic": t.statistic,
                "p_value": t.p_value,
                "effect": t.effect,
                "tests_in_family": m,
                "correction": method,
                "alpha": alpha,
                **t.details,
            }
            findings.append(
                Finding(
                    check,
                    Severity.ERROR if r else Severity.INFO,
                    _message(t, where, r),
                    _fix(t) if r else "nothing to do",
                    rows=rows,
                    code=code,
                    details=details,
                )
            )
        for rate, limit in rates_warn.items():
            value = w.rates.get(rate)
            if value is not None and value > limit:
                code = {"no_label_rate": "MON012", "refusal_rate": "MON013", "empty_answer_rate": "MON014"}[rate]
                findings.append(
                    Finding(
                        f"output.{rate.removesuffix('_rate')}",
                        Severity.WARNING,
                        f"{where}: {100 * value:.1f} % of answers are {rate.removesuffix('_rate').replace('_', ' ')} "
                        f"(warning above {100 * limit:.0f} %)",
                        "read the examples in the report; add such prompts with their correct answers to the training data",
                        rows=rows,
                        code=code,
                        details={
                            "window": w.window.index,
                            "rate": value,
                            "examples": w.no_label_examples if rate == "no_label_rate" else [],
                        },
                    )
                )
        if w.alert:
            findings.append(_alert(w, where, rows))
    return findings


def _message(t: TestResult, where: str, significant: bool) -> str:
    verdict = "drift" if significant else "no significant drift"
    if t.name == "out_of_scope":
        d = t.details
        return (
            f"{where}: {d['far']} of {d['n']} requests ({100 * t.statistic:.1f} %) are farther from every training row "
            f"than 99 % of training rows are from each other (expected about {100 * d['expected_share']:.1f} %), "
            f"p = {t.p_value:.2g}: {verdict}"
        )
    if t.name in ("label_vs_train", "label_vs_test", "language"):
        return f"{where}: {t.name.replace('_', ' ')} Jensen-Shannon {t.effect:.3f}, p = {t.p_value:.2g}: {verdict}"
    if t.name == "domain_classifier":
        return f"{where}: a classifier tells traffic from training rows with AUC {t.statistic:.3f}, p = {t.p_value:.2g}: {verdict}"
    if t.name == "mmd":
        return f"{where}: embedding MMD^2 {t.statistic:.4f}, p = {t.p_value:.2g}: {verdict}"
    return (
        f"{where}: {t.name.replace('_', ' ')} KS D = {t.statistic:.3f}, PSI {t.details.get('psi', 0):.3f}, "
        f"median {t.details.get('median_reference')} -> {t.details.get('median_window')}, p = {t.p_value:.2g}: {verdict}"
    )


def _fix(t: TestResult) -> str:
    return {
        "out_of_scope": "label the out-of-scope examples listed (add a class, or an explicit 'out of scope' answer) and retrain",
        "label_vs_train": "collect and label recent requests of the classes that shifted; check whether their prompts changed",
        "label_vs_test": "collect and label recent requests of the classes that shifted; re-evaluate on fresh labelled traffic",
        "language": "collect and label requests in the new language(s), or route them elsewhere",
        "token_length": "collect requests of the new lengths; check max_seq_length covers them",
        "answer_length": "read long/short answers in the report; retrain with corrected answers of that kind",
    }.get(t.name, "sample recent requests, label them and add them to the training data; re-run the evaluation on them")


def _alert(w: WindowResult, where: str, rows: list[RowRef]) -> Finding:
    drifted = [TESTS[t.name][1] for t, r in zip(w.tests, w.rejected) if r]
    collect: list[str] = []
    for t, r in zip(w.tests, w.rejected):
        if r and t.name == "out_of_scope":
            collect.append(f"the {t.details['far']} out-of-scope requests (examples in the report)")
        if r and t.name.startswith("label_vs"):
            classes = [s["category"] for s in t.details.get("most_shifted", [])[:3]]
            collect.append("requests of the shifted classes " + ", ".join(classes))
        if r and t.name == "language":
            collect.append("requests in " + ", ".join(s["category"] for s in t.details.get("most_shifted", [])[:2]))
    if not collect:
        collect.append("a random sample of this window's requests")
    return Finding(
        "alert",
        Severity.ERROR,
        f"ALERT {where}: drift in {', '.join(drifted)}",
        "retrain: collect and label " + "; ".join(collect) + ", add them to the training data, re-run `tunerail run`",
        rows=rows,
        code="MON030",
        details={"window": w.window.index, "drifted": drifted, "out_of_scope_examples": w.oos_examples},
    )
