"""The shipped forgetting suite and the relative-change arithmetic."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from eval_fixtures import cached_tiny_pair  # noqa: E402

from tunerail.eval.forgetting import SuiteScores, compare, load_suite, run_suite  # noqa: E402


def test_suite_is_well_formed_and_attributed():
    rows = load_suite()
    assert len(rows) == 40 and len({r["id"] for r in rows}) == 40
    for r in rows:
        assert len(r["choices"]) == 4 and r["choices"][r["answer"]] == r["output"]
        assert len(set(r["choices"])) == 4 and len(r["prompt"]) <= 360 and len(r["output"]) <= 124
    assert len({r["answer"] for r in rows}) == 4  # the right answer is not always in one position
    from importlib import resources

    attribution = resources.files("tunerail.resources").joinpath("ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "Apache License 2.0" in attribution and "self-instruct" in attribution


def test_compare_relative_change_and_budget():
    base = SuiteScores(np.full(10, 2.0), np.array([1.0] * 8 + [0.0] * 2), 1.0)
    tuned = SuiteScores(np.full(10, 2.5), np.array([1.0] * 6 + [0.0] * 4), 1.0)
    res = compare(base, tuned, budget=0.1, resamples=200)
    assert res.relative_change == {"answer_nll": pytest.approx(0.25), "mc_accuracy": pytest.approx(0.25)}
    assert res.over_budget and res.worst == pytest.approx(0.25)
    same = compare(base, base, budget=0.1, resamples=200)
    assert same.worst == 0 and not same.over_budget


def test_run_suite_on_tiny_models():
    from tunerail.eval.generate import load_model

    model, adapter = cached_tiny_pair()
    rows = load_suite()[:6]
    base = run_suite(load_model(str(model)), rows)
    tuned = run_suite(load_model(str(model), adapter), rows)
    assert base.answer_nll.shape == (6,) and np.all(base.answer_nll > 0)
    assert not np.allclose(base.answer_nll, tuned.answer_nll)  # the adapter changes the model
    assert set(np.unique(base.mc_correct)) <= {0.0, 1.0}
