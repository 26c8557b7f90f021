"""The monitor's statistics: family-wise corrections, false-alarm control under no drift, power under drift."""

from __future__ import annotations

from collections import Counter

import numpy as np

from tunerail.monitor.stats import (
    classifier_test,
    correct,
    distribution_test,
    mmd_test,
    nearest_distances,
    out_of_scope_test,
)


def test_bonferroni_and_holm():
    p = [0.001, 0.012, 0.02, 0.5]
    assert correct(p, 0.05, "bonferroni") == [True, True, False, False]  # alpha/4 = 0.0125
    assert correct(p, 0.05, "holm") == [True, True, True, False]  # 0.001<.0125, .012<.0167, .02<.025, .5>.05


def test_categorical_test_keeps_its_level_with_rare_categories():
    # language-like mix: one dominant class and many rare ones (short queries misdetected as other languages)
    rng = np.random.default_rng(0)
    cats = ["en"] + [f"x{i}" for i in range(25)]
    probs = np.array([0.95] + [0.05 / 25] * 25)
    rejections = 0
    sims = 400
    for _ in range(sims):
        ref = Counter(rng.choice(cats, size=1000, p=probs))
        win = Counter(rng.choice(cats, size=200, p=probs))
        res = distribution_test(ref, win, "language")
        rejections += res is not None and res.p_value <= 0.05
    assert rejections / sims <= 0.07  # nominal 5 %, 400 draws: 7 % is about 2 standard errors above


def test_categorical_test_detects_a_shift():
    ref = Counter({"en": 950, "de": 50})
    win = Counter({"en": 150, "de": 50})
    assert distribution_test(ref, win, "language").p_value < 1e-6


def _sphere(rng, n, d=16, shift=0.0):
    x = rng.normal(size=(n, d))
    x[:, 0] += shift
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_out_of_scope_share_is_at_most_one_percent_without_drift():
    rng = np.random.default_rng(1)
    ref = _sphere(rng, 800)
    loo, _ = nearest_distances(ref, ref, leave_one_out=True)
    threshold = float(np.quantile(loo, 0.99))
    new, _ = nearest_distances(ref, _sphere(rng, 4000))
    assert np.mean(new > threshold) <= 0.015
    # out of scope: 10 % of a window orthogonal to every training row
    sub = _sphere(rng, 800, d=8)
    ref8 = np.hstack([sub, np.zeros_like(sub)])
    loo8, _ = nearest_distances(ref8, ref8, leave_one_out=True)
    t8 = float(np.quantile(loo8, 0.99))
    inside = np.hstack([_sphere(rng, 180, d=8), np.zeros((180, 8))])
    outside = np.hstack([np.zeros((20, 8)), _sphere(rng, 20, d=8)])
    far = out_of_scope_test(t8, 0.99, nearest_distances(ref8, np.vstack([inside, outside]))[0])
    null = out_of_scope_test(t8, 0.99, nearest_distances(ref8, np.hstack([_sphere(rng, 200, d=8), np.zeros((200, 8))]))[0])
    assert far.details["far"] >= 20 and far.p_value < 1e-8
    assert null.p_value > 0.01


def test_mmd_and_classifier_calibrated_and_powerful():
    rng = np.random.default_rng(2)
    ref = _sphere(rng, 300)
    null_p = [mmd_test(ref, _sphere(rng, 100), permutations=200, rng=rng).p_value for _ in range(10)]
    assert min(null_p) > 0.01
    shifted = _sphere(rng, 100, shift=1.0)
    assert mmd_test(ref, shifted, permutations=200, rng=rng).p_value <= 1 / 201 + 1e-9
    res = classifier_test(ref, shifted, permutations=200, rng=rng)
    assert res.statistic > 0.7 and res.p_value <= 1 / 201 + 1e-9
    assert classifier_test(ref, _sphere(rng, 100), permutations=200, rng=rng).p_value > 0.01
