"""Rows that share an input (one answer scored against several human references) count once in a CI.

A multi-reference test set (CommonGen: up to 4 human sentences per concept set) repeats each prompt, and
the model answers it once. A row bootstrap treats the repeats as independent draws and narrows every
interval by about sqrt(repeats); the cluster bootstrap redraws whole inputs.
"""

import numpy as np
import pytest

from tunerail import stats as S
from tunerail.eval import compare as C
from tunerail.scoring import score_generation


def _repeated(x: np.ndarray, times: int) -> tuple[np.ndarray, list[int]]:
    return np.repeat(x, times), [i for i in range(x.size) for _ in range(times)]


def test_each_input_repeated_four_times_gives_the_interval_of_the_inputs_alone():
    x = np.random.default_rng(0).uniform(size=120)
    once = S.bootstrap_ci(x)
    x4, groups = _repeated(x, 4)
    rows = S.bootstrap_ci(x4)
    clustered = S.bootstrap_ci(x4, groups=groups)
    assert (clustered.low, clustered.high) == pytest.approx((once.low, once.high))  # same draws, one cluster per input
    assert clustered.extra["clusters"] == 120
    assert (rows.high - rows.low) < 0.6 * (once.high - once.low)  # what counting repeats as rows would claim


def test_paired_gain_and_corpus_statistics_redraw_whole_inputs():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(size=80), rng.uniform(size=80) - 0.05
    a4, groups = _repeated(a, 4)
    b4, _ = _repeated(b, 4)
    once = S.paired_bootstrap(a, b)
    clustered = S.paired_bootstrap(a4, b4, groups=groups)
    assert (clustered.low, clustered.high) == pytest.approx((once.low, once.high))
    assert clustered.extra["p_value"] == once.extra["p_value"]
    stat = S.bootstrap_statistic(lambda idx: float(a4[idx].mean()), a4.size, groups=groups)
    alone = S.bootstrap_ci(a)
    assert (stat.low, stat.high) == pytest.approx((alone.low, alone.high))


def test_distinct_inputs_keep_the_row_bootstrap_and_wilson():
    x = np.random.default_rng(2).uniform(size=50)
    assert S.bootstrap_ci(x).to_dict() == S.bootstrap_ci(x, groups=[f"p{i}" for i in range(50)]).to_dict()
    hits = np.array([1.0] * 30 + [0.0] * 20)
    assert S.mean_ci(hits, groups=list(range(50))).extra["interval"] == "wilson"
    repeated = S.mean_ci(np.repeat(hits, 2), groups=[i for i in range(50) for _ in range(2)])
    assert repeated.extra["interval"].startswith("cluster bootstrap")


def test_eval_estimates_and_gains_count_a_multi_reference_input_once():
    refs = ["a dog catches a frisbee", "the dog jumps to catch a frisbee", "a man throws a frisbee to his dog"] * 20
    prompts = [f"set{i // 3}" for i in range(60)]
    variants = ["a dog catches a frisbee", "a man throws a frisbee", "the frisbee", "dog"]
    picks = np.random.default_rng(3).integers(0, len(variants), size=20)
    answers = [variants[picks[i // 3]] for i in range(60)]  # one answer per set, repeated for each of its references
    other = [variants[(picks[i // 3] + 2) % len(variants)] for i in range(60)]
    tuned, base = score_generation(refs, answers), score_generation(refs, other)
    rows = C.estimates(tuned, 60, 1000)["rougeL"]
    sets = C.estimates(tuned, 60, 1000, prompts)["rougeL"]
    assert sets["clusters"] == 20 and "clusters" not in rows
    assert sets["high"] - sets["low"] >= rows["high"] - rows["low"]
    gain, _ = C.compare(tuned, base, "rougeL", 1000, "generation", prompts)
    assert gain["clusters"] == 20
