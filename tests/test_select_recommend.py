"""The recommendation rule on per-row scores: smallest not significantly below the best, eligible only."""

from __future__ import annotations

import numpy as np

from tunerail import stats as S
from tunerail.select.recommend import Entry, recommend


def _entry(name: str, params: int, correct: np.ndarray, bits: np.ndarray | None = None, blocked=()) -> Entry:
    correct = np.asarray(correct, dtype=float)
    bits = np.full(correct.size, 2.0) if bits is None else np.asarray(bits, dtype=float)
    score = S.bootstrap_ci(correct, resamples=300).to_dict()
    bpb = S.bootstrap_ci(bits, resamples=300).to_dict()
    return Entry(
        name, params, score, lambda idx, c=correct: float(c[idx].mean()), bpb, lambda idx, b=bits: float(b[idx].mean()), list(blocked)
    )


def _rows(n: int, hits: int, seed: int) -> np.ndarray:
    out = np.zeros(n)
    out[np.random.default_rng(seed).choice(n, hits, replace=False)] = 1
    return out


def test_a_bigger_model_that_is_not_significantly_better_loses_to_the_smaller_one():
    small = _rows(100, 60, 0)
    big = small.copy()
    big[np.flatnonzero(small == 0)[:2]] = 1  # two more rows right: 0.62 vs 0.60
    rec = recommend([_entry("big", 1_000_000_000, big), _entry("small", 135_000_000, small)], 100, resamples=300)
    assert rec.recommended == "small" and rec.decided_by == "task score"
    assert [f.code for f in rec.findings] == ["SEL030"] and "big" in rec.findings[0].message
    assert rec.ranking == ["small", "big"]


def test_a_significantly_better_bigger_model_is_recommended():
    rec = recommend([_entry("big", 10**9, _rows(100, 90, 1)), _entry("small", 10**8, _rows(100, 30, 2))], 100, resamples=300)
    assert rec.recommended == "big" and not rec.findings
    assert rec.comparisons["small"]["significantly_below"]


def test_when_every_score_is_near_zero_bits_per_byte_decides():
    zeros = np.zeros(50)
    rec = recommend(
        [
            _entry("a", 10**8, zeros, bits=np.full(50, 3.0) + np.linspace(0, 0.1, 50)),
            _entry("b", 10**8, zeros, bits=np.full(50, 1.5) + np.linspace(0, 0.1, 50)),
        ],
        50,
        resamples=300,
    )
    assert rec.decided_by == "bits per byte" and rec.recommended == "b"
    assert "SEL031" in [f.code for f in rec.findings]


def test_ineligible_candidates_are_skipped_and_none_eligible_is_an_error():
    best, worse = _rows(100, 80, 3), _rows(100, 40, 4)
    rec = recommend([_entry("nc", 10**8, best, blocked=["SEL001 licence.non_commercial"]), _entry("ok", 10**9, worse)], 100, resamples=300)
    assert rec.recommended == "ok" and "nc scores higher but is not eligible" in rec.reason
    none = recommend([_entry("nc", 10**8, best, blocked=["SEL001 licence.non_commercial"])], 100, resamples=300)
    assert none.recommended is None and [f.code for f in none.findings] == ["SEL032"]


def test_a_near_zero_model_is_not_recommended_because_the_gate_blocked_the_ones_that_can_do_the_task():
    # Seen in bench/select_models.py on a loaded machine: the time probe put SmolLM2 and Gemma over the
    # budget, and the damaged copy (0.000) was recommended "with the best task score among eligible".
    good, damaged = _rows(40, 8, 5), np.zeros(40)
    rec = recommend(
        [_entry("good", 10**8, good, blocked=["SEL020 select.over_budget"]), _entry("damaged", 10**8, damaged)], 40, resamples=300
    )
    assert rec.recommended is None and [f.code for f in rec.findings] == ["SEL033"]
    assert "good" in rec.findings[0].message and "SEL020" in rec.findings[0].message
    assert rec.findings[0].severity == "error"


def test_tunerail_select_is_the_step_even_after_its_package_is_imported():
    import pytest

    import tunerail
    import tunerail.select.recipe  # noqa: F401  (binds the package as `tunerail.select`)
    from tunerail.config import TunerailConfig
    from tunerail.errors import TunerailError

    with pytest.raises(TunerailError, match="no candidates"):
        tunerail.select(TunerailConfig(), data=[])
