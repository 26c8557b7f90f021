"""Confidence intervals and sample sizes: the one place every step gets its statistics from.

The doctor (is the data big enough?), split (is the test set precise enough?), eval (the verdict),
select, sweep and review all size or judge with these functions, so a margin means the same thing
everywhere. Intervals used here:

- **Wilson score interval** for proportions (accuracy, win rates, share of rows): correct at the
  extremes, where the normal and the percentile-bootstrap intervals collapse to width 0
  (0 correct of 38 gives [0, 0.092], not [0, 0]).
- **Percentile bootstrap** for means of per-example scores and for corpus metrics (macro-F1,
  BLEU), seeded and vectorised; paired versions resample both systems on the same rows.
- **Cluster bootstrap** when rows share an input (a multi-reference test set scores one answer against
  each of several human references): whole clusters are redrawn, so n is the number of inputs, not of
  rows, and the interval is not narrowed by counting one answer several times.
- **Sample size** for a margin: the smallest n whose worst-case (p = 0.5) Wilson half-width is
  at most the margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

Z95 = 1.959963984540054


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n`` (95 % by default).

    >>> [round(v, 3) for v in wilson_interval(0, 38)]
    [0.0, 0.092]
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson_half_width(n: int, p: float = 0.5, z: float = Z95) -> float:
    """Half the width of the Wilson interval at proportion ``p`` on ``n`` rows (inf for n = 0)."""
    if n <= 0:
        return float("inf")
    lo, hi = wilson_interval(p * n, n, z)
    return (hi - lo) / 2


def planning_proportion(expected: float | None) -> float:
    """The proportion a test-set size is planned at: the success threshold when it is one, else 0.5.

    Doctor (before the split) and split (at it) both size the test set with this, so they name
    the same number of rows for one config.
    """
    return 0.5 if expected is None or not 0 < expected < 1 else float(expected)


def rows_needed(margin: float, p: float = 0.5, z: float = Z95) -> int:
    """Smallest n whose 95 % Wilson half-width at ``p`` is at most ``margin``.

    ``p = 0.5`` is the worst case for a proportion and an upper bound for any metric bounded in
    [0, 1], so it is safe for F1 or ROUGE too. 381 rows for +/-0.05 (the normal approximation says 385).

    >>> rows_needed(0.05)
    381
    """
    if not 0 < margin < 1:
        raise ValueError(f"margin must be in (0, 1), found {margin}")
    # The Wilson half-width is below the normal one; start from the normal size and walk down.
    n = max(1, math.ceil(z * z * p * (1 - p) / margin**2))
    while n > 1 and wilson_half_width(n - 1, p, z) <= margin:
        n -= 1
    while wilson_half_width(n, p, z) > margin:
        n += 1
    return n


@dataclass
class Estimate:
    """A headline number with its 95 % percentile-bootstrap interval."""

    value: float
    low: float
    high: float
    n: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n, **self.extra}


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) indices drawn with replacement; shared so paired tests use the same draws."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def clusters_of(groups: Sequence[Any] | None, n: int) -> list[np.ndarray] | None:
    """Row indices per cluster (rows with the same group key), or None when every row is its own cluster."""
    if groups is None:
        return None
    if len(groups) != n:
        raise ValueError(f"{len(groups)} group keys for {n} rows")
    index: dict[Any, int] = {}
    ids = np.array([index.setdefault(g, len(index)) for g in groups], dtype=int)
    if len(index) == n:
        return None
    order = np.argsort(ids, kind="stable")
    return np.split(order, np.cumsum(np.bincount(ids))[:-1])


def resample_rows(n: int, resamples: int, seed: int, groups: Sequence[Any] | None = None) -> np.ndarray | list[np.ndarray]:
    """Row indices per resample: rows drawn with replacement, or whole clusters of rows when ``groups`` repeat.

    Without repeated groups the draws are ``bootstrap_indices``'s, so figures computed before clusters
    existed do not move. The same seed and groups give the same draws, which keeps paired tests paired.
    """
    clusters = clusters_of(groups, n)
    if clusters is None:
        return bootstrap_indices(n, resamples, seed)
    picks = np.random.default_rng(seed).integers(0, len(clusters), size=(resamples, len(clusters)))
    return [np.concatenate([clusters[g] for g in row]) for row in picks]


def _resampled_means(x: np.ndarray, draws: np.ndarray | list[np.ndarray]) -> np.ndarray:
    if isinstance(draws, np.ndarray):
        return np.asarray(x[draws].mean(axis=1))
    return np.array([x[idx].mean() for idx in draws])


def _units(n: int, groups: Sequence[Any] | None) -> dict[str, Any]:
    clusters = clusters_of(groups, n)
    return {} if clusters is None else {"clusters": len(clusters), "interval": "cluster bootstrap (rows sharing an input drawn together)"}


def bootstrap_ci(
    scores: Sequence[float] | np.ndarray,
    *,
    resamples: int = 1000,
    seed: int = 13,
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
    alpha: float = 0.05,
    groups: Sequence[Any] | None = None,
) -> Estimate:
    """Percentile bootstrap CI of the mean of per-example ``scores`` (vectorised).

    ``statistic`` receives a (resamples, n) array and returns one value per resample; the
    default is the row mean. For corpus metrics (BLEU) use ``bootstrap_statistic``. ``groups``
    (one key per row) redraws rows that share a key together: see ``resample_rows``.
    """
    x = np.asarray(scores, dtype=float)
    if x.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    stat = statistic or (lambda a: a.mean(axis=1))
    draws = resample_rows(x.size, resamples, seed, groups)
    if isinstance(draws, np.ndarray):
        samples = stat(x[draws])
    else:
        samples = np.array([stat(x[idx][None, :])[0] for idx in draws])
    lo, hi = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    value = float(stat(x[None, :])[0])
    return Estimate(value, float(lo), float(hi), int(x.size), _units(x.size, groups))


def mean_ci(
    scores: Sequence[float] | np.ndarray, *, resamples: int = 1000, seed: int = 13, groups: Sequence[Any] | None = None
) -> Estimate:
    """CI of the mean of per-example scores: Wilson when every score is 0 or 1 (a proportion), else bootstrap.

    The percentile bootstrap of 0 of 38 is [0, 0] (width 0); Wilson gives [0, 0.092]. The
    interval used is named in ``extra["interval"]``. Rows that share a group key are not independent
    (Wilson would count them as such): they get the cluster bootstrap.
    """
    x = np.asarray(scores, dtype=float)
    if clusters_of(groups, x.size) is not None:
        return bootstrap_ci(x, resamples=resamples, seed=seed, groups=groups)
    if x.size and np.all((x == 0) | (x == 1)):
        lo, hi = wilson_interval(float(x.sum()), int(x.size))
        p = float(x.mean())  # rounding may put a bound a hair past p at 0 or 1: the point stays inside
        return Estimate(p, min(lo, p), max(hi, p), int(x.size), {"interval": "wilson"})
    est = bootstrap_ci(x, resamples=resamples, seed=seed)
    est.extra["interval"] = "percentile bootstrap"
    return est


def margin_of(estimate: dict[str, Any]) -> float:
    """How far the truth may lie from the point estimate: the LARGER side of the 95 % interval.

    Wilson intervals are asymmetric at the extremes (0 of 38: [0, 0.092]); half the width (0.046)
    would pass a 0.05 margin although the true value may be 0.09.
    """
    return max(estimate["value"] - estimate["low"], estimate["high"] - estimate["value"])


def paired_bootstrap(
    tuned: Sequence[float] | np.ndarray,
    base: Sequence[float] | np.ndarray,
    *,
    resamples: int = 1000,
    seed: int = 13,
    groups: Sequence[Any] | None = None,
) -> Estimate:
    """CI of mean(tuned - base) with both resampled on the same examples, and a one-sided p.

    ``extra["p_value"]`` is the share of resamples where the tuned model is not better
    (Koehn 2004's paired bootstrap), a test that works for any per-example score.
    """
    a, b = np.asarray(tuned, dtype=float), np.asarray(base, dtype=float)
    check_same_length(a, b)
    diff = a - b
    est = bootstrap_ci(diff, resamples=resamples, seed=seed, groups=groups)
    if diff.size:
        means = _resampled_means(diff, resample_rows(diff.size, resamples, seed, groups))
        est.extra["p_value"] = float((np.sum(means <= 0) + 1) / (resamples + 1))
        est.extra["test"] = "paired bootstrap"
    return est


def mcnemar(tuned_correct: Sequence[bool] | np.ndarray, base_correct: Sequence[bool] | np.ndarray) -> dict[str, Any]:
    """Exact McNemar test on the discordant pairs: b ~ Binomial(b + c, 0.5) under H0 (scipy).

    b = tuned right & base wrong, c = tuned wrong & base right. One implementation whatever is installed,
    so the same run gives the same report everywhere.
    """
    from scipy.stats import binomtest

    t, s = np.asarray(tuned_correct, dtype=bool), np.asarray(base_correct, dtype=bool)
    check_same_length(t, s)
    b, c = int(np.sum(t & ~s)), int(np.sum(~t & s))
    p = float(binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0
    impl = "exact McNemar (scipy binomial test)"
    return {"test": impl, "tuned_only_correct": b, "base_only_correct": c, "p_value": p}


def check_same_length(a: Sequence[Any] | np.ndarray, b: Sequence[Any] | np.ndarray) -> None:
    if len(a) != len(b):
        raise ValueError(f"predictions and references differ in length: {len(a)} vs {len(b)}")


def bootstrap_statistic(
    statistic: Callable[[np.ndarray], float], n: int, *, resamples: int = 1000, seed: int = 13, groups: Sequence[Any] | None = None
) -> Estimate:
    """Percentile CI for any statistic of the example indices (macro-F1, corpus BLEU...).

    ``statistic(idx)`` computes the metric on the examples ``idx``; called once per resample,
    so keep ``resamples`` modest for expensive corpus metrics. Same seed => same draws as
    ``bootstrap_ci``, which keeps paired comparisons paired.
    """
    value = float(statistic(np.arange(n)))
    if n == 0:
        return Estimate(value, value, value, 0)
    samples = np.array([statistic(row) for row in resample_rows(n, resamples, seed, groups)])
    lo, hi = np.quantile(samples, [0.025, 0.975])
    return Estimate(value, float(lo), float(hi), n, _units(n, groups))


def paired_statistic(
    tuned: Callable[[np.ndarray], float],
    base: Callable[[np.ndarray], float],
    n: int,
    *,
    resamples: int = 1000,
    seed: int = 13,
    groups: Sequence[Any] | None = None,
) -> Estimate:
    """Paired bootstrap of ``tuned(idx) - base(idx)`` for corpus metrics, with a one-sided p."""
    full = np.arange(n)
    value = float(tuned(full) - base(full))
    if n == 0:
        return Estimate(value, value, value, 0)
    diffs = np.array([tuned(row) - base(row) for row in resample_rows(n, resamples, seed, groups)])
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    extra = {"p_value": float((np.sum(diffs <= 0) + 1) / (resamples + 1)), "test": "paired bootstrap", **_units(n, groups)}
    return Estimate(value, float(lo), float(hi), n, extra)
