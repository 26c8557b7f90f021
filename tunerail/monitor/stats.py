"""The two-sample tests behind the drift findings, each a thin wrapper over scipy / scikit-learn.

Every function takes the reference sample first and the traffic window second and returns a
:class:`TestResult` (statistic, p-value, effect size, what was compared). Permutation tests
count the observed statistic among the permuted ones (``(1 + #{perm >= obs}) / (1 + B)``), so
a p-value is never 0 and is valid for any sample size.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np


@dataclass
class TestResult:
    name: str
    statistic: float
    p_value: float
    effect: float  # a size that does not grow with n (MMD^2, AUC - 0.5, KS D, JS distance, excess share)
    details: dict[str, Any] = field(default_factory=dict)


def _perm_p(observed: float, permuted: np.ndarray) -> float:
    return float((1 + np.sum(permuted >= observed - 1e-12)) / (1 + len(permuted)))


def median_bandwidth(z: np.ndarray, rng: np.random.Generator, max_points: int = 1000) -> float:
    """Median pairwise Euclidean distance of the pooled sample (the median heuristic)."""
    from sklearn.metrics import pairwise_distances

    idx = rng.choice(len(z), size=min(len(z), max_points), replace=False)
    d = pairwise_distances(z[idx])
    med = float(np.median(d[np.triu_indices(len(idx), k=1)]))
    return med if med > 0 else 1.0


def mmd_test(ref: np.ndarray, win: np.ndarray, *, permutations: int, rng: np.random.Generator) -> TestResult:
    """Kernel two-sample test: biased MMD^2 with an RBF kernel (median-heuristic bandwidth), permutation p-value.

    All permutations are evaluated at once as ``a^T K a`` for a (n, B) matrix of signed weights,
    one BLAS call.
    """
    from sklearn.metrics.pairwise import rbf_kernel

    z = np.vstack([ref, win]).astype(np.float64)
    sigma = median_bandwidth(z, rng)
    k = rbf_kernel(z, gamma=1.0 / (2 * sigma ** 2))
    m, n = len(ref), len(win)
    a = np.concatenate([np.full(m, 1.0 / m), np.full(n, -1.0 / n)])
    observed = float(a @ k @ a)
    perms = np.stack([rng.permutation(a) for _ in range(permutations)], axis=1)
    permuted = np.einsum("ib,ib->b", perms, k @ perms)
    return TestResult("mmd", observed, _perm_p(observed, permuted), observed,
                      {"bandwidth": sigma, "permutations": permutations, "n_reference": m, "n_window": n})


def classifier_test(ref: np.ndarray, win: np.ndarray, *, permutations: int, rng: np.random.Generator,
                    folds: int = 5, seed: int = 0) -> TestResult:
    """Cross-fitted domain classifier: can a logistic regression tell traffic from training rows?

    Each row is scored by a model fitted on the other folds (so the AUC is out of sample). Under
    no drift the held-out labels are exchangeable within a fold given the fitted models, so the
    permutation p-value permutes labels within folds without refitting: valid, and one fit per
    fold instead of one per permutation.
    """
    from scipy.stats import rankdata
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    z = np.vstack([ref, win])
    y = np.concatenate([np.zeros(len(ref), dtype=int), np.ones(len(win), dtype=int)])
    scores = np.zeros(len(z))
    fold_of = np.zeros(len(z), dtype=int)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for f, (tr, te) in enumerate(splitter.split(z, y)):
        clf = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced")
        clf.fit(z[tr], y[tr])
        scores[te] = clf.decision_function(z[te])
        fold_of[te] = f
    ranks = rankdata(scores)
    n1, n0 = int(y.sum()), int(len(y) - y.sum())

    def auc(labels: np.ndarray) -> np.ndarray:
        return (ranks @ labels - n1 * (n1 + 1) / 2) / (n1 * n0)

    observed = float(auc(y.astype(float)))
    perms = np.empty((len(y), permutations))
    for b in range(permutations):
        col = y.copy()
        for f in range(folds):
            idx = np.flatnonzero(fold_of == f)
            col[idx] = rng.permutation(col[idx])
        perms[:, b] = col
    permuted = auc(perms)
    return TestResult("domain_classifier", observed, _perm_p(observed, permuted), observed - 0.5,
                      {"auc": observed, "folds": folds, "permutations": permutations})


def psi(ref: Sequence[float], win: Sequence[float], bins: int = 10) -> float:
    """Population stability index over the reference's quantile bins (0.1 moderate, 0.25 large shift)."""
    ref_a, win_a = np.asarray(ref, float), np.asarray(win, float)
    edges = np.unique(np.quantile(ref_a, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return 0.0
    edges[0], edges[-1] = -np.inf, np.inf
    p = np.histogram(ref_a, edges)[0] / len(ref_a)
    q = np.histogram(win_a, edges)[0] / len(win_a)
    p, q = np.clip(p, 1e-4, None), np.clip(q, 1e-4, None)
    return float(np.sum((q - p) * np.log(q / p)))


def length_test(ref: Sequence[float], win: Sequence[float], name: str = "token_length") -> TestResult:
    """Two-sample Kolmogorov-Smirnov on lengths (scipy), with PSI and the medians as effect sizes."""
    from scipy.stats import ks_2samp

    res = ks_2samp(ref, win)
    return TestResult(name, float(res.statistic), float(res.pvalue), float(res.statistic),
                      {"psi": psi(ref, win), "median_reference": float(np.median(ref)), "median_window": float(np.median(win))})


def _pooled_table(ref: Counter, win: Counter, min_expected: float = 5.0) -> tuple[list[str], np.ndarray]:
    """2 x k counts, rarest categories pooled into "(other)" until every expected count is >= min_expected.

    The chi-square approximation breaks on small expected counts (rare languages detected on
    short queries); pooling keeps its false-alarm rate at the nominal level.
    """
    cats = sorted(set(ref) | set(win), key=lambda c: -(ref[c] + win[c]))
    total_r, total_w = sum(ref.values()), sum(win.values())
    share_w = total_w / max(total_r + total_w, 1)
    keep: list[str] = []
    other = [0, 0]
    for c in cats:
        tot = ref[c] + win[c]
        if min(tot * share_w, tot * (1 - share_w)) >= min_expected:
            keep.append(c)
        else:
            other[0] += ref[c]
            other[1] += win[c]
    rows = [[ref[c] for c in keep], [win[c] for c in keep]]
    if sum(other):
        tot = sum(other)
        if keep and min(tot * share_w, tot * (1 - share_w)) < min_expected:  # fold a too-small "(other)" into the last kept
            rows[0][-1] += other[0]
            rows[1][-1] += other[1]
            keep[-1] = keep[-1] + " + (other)"
        else:
            keep.append("(other)")
            rows[0].append(other[0])
            rows[1].append(other[1])
    return keep, np.asarray(rows, dtype=float)


def distribution_test(ref: Counter, win: Counter, name: str) -> TestResult | None:
    """Chi-square test of homogeneity (scipy ``chi2_contingency``) of two categorical samples.

    Returns None when fewer than two categories remain after pooling (nothing to compare).
    The Jensen-Shannon distance (base 2, 0..1) is the effect size.
    """
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chi2_contingency, fisher_exact

    cats, table = _pooled_table(ref, win)
    if table.shape[1] < 2 or table.sum(axis=1).min() == 0:
        return None
    if table.shape[1] == 2 and (np.outer(table.sum(1), table.sum(0)) / table.sum()).min() < 5:
        stat, p = fisher_exact(table.astype(int))
        stat = float(stat)
    else:
        stat, p, _, _ = chi2_contingency(table)
    all_cats = sorted(set(ref) | set(win))
    pr = np.array([ref[c] for c in all_cats], float)
    pw = np.array([win[c] for c in all_cats], float)
    js = float(jensenshannon(pr / pr.sum(), pw / pw.sum(), base=2))
    shifted = sorted(((c, win[c] / max(sum(win.values()), 1) - ref[c] / max(sum(ref.values()), 1)) for c in all_cats),
                     key=lambda kv: -abs(kv[1]))[:5]
    return TestResult(name, float(stat), float(p), js, {"categories": cats, "table": table.astype(int).tolist(),
                                                         "most_shifted": [{"category": c, "share_change": round(d, 4)} for c, d in shifted]})


def nearest_distances(reference: np.ndarray, queries: np.ndarray, *, leave_one_out: bool = False,
                      batch: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distance to the nearest reference row (L2-normalised inputs) and its index."""
    dist = np.empty(len(queries))
    idx = np.empty(len(queries), dtype=int)
    for start in range(0, len(queries), batch):
        sims = queries[start:start + batch] @ reference.T
        if leave_one_out:
            rows = np.arange(start, min(start + batch, len(queries)))
            sims[rows - start, rows] = -np.inf
        idx[start:start + batch] = sims.argmax(axis=1)
        dist[start:start + batch] = 1.0 - sims.max(axis=1)
    return dist, idx


def out_of_scope_test(threshold: float, quantile: float, window_dist: np.ndarray,
                      control_dist: np.ndarray | None = None) -> TestResult:
    """Share of requests farther from every training row than the training rows' own ``quantile``.

    Without a control, a one-sided binomial test (scipy ``binomtest``) against ``1 - quantile``:
    a new in-distribution row is exchangeable with the training rows, so it exceeds their
    leave-one-out quantile with probability at most ``1 - quantile``. With a control (the frozen
    test set, which a grouped split keeps a little farther from train), a one-sided Fisher exact
    test against the control's own share.
    """
    from scipy.stats import binomtest, fisher_exact

    far = window_dist > threshold
    k, n = int(far.sum()), len(far)
    share = k / max(n, 1)
    if control_dist is not None and len(control_dist):
        kc, nc = int((control_dist > threshold).sum()), len(control_dist)
        _, p = fisher_exact([[k, n - k], [kc, nc - kc]], alternative="greater")
        base = max(kc / nc, 1 - quantile)
        method = "fisher_vs_control"
    else:
        p = binomtest(k, n, 1 - quantile, alternative="greater").pvalue
        base, kc, nc = 1 - quantile, None, None
        method = "binomial"
    return TestResult("out_of_scope", share, float(p), share - base,
                      {"far": k, "n": n, "threshold": threshold, "expected_share": base, "method": method,
                       "control_far": kc, "control_n": nc})


def correct(p_values: Sequence[float], alpha: float, method: str) -> list[bool]:
    """Which hypotheses are rejected with family-wise error <= alpha (Bonferroni or Holm step-down)."""
    p = np.asarray(p_values, float)
    m = len(p)
    if m == 0:
        return []
    if method == "bonferroni":
        return list(p <= alpha / m)
    reject = np.zeros(m, dtype=bool)
    for rank, i in enumerate(np.argsort(p)):
        if p[i] > alpha / (m - rank):
            break
        reject[i] = True
    return list(reject)
