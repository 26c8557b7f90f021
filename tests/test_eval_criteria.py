"""Criteria decided with confidence: CI lower bound by default, point estimate on request, none refused."""

from __future__ import annotations

import numpy as np
import pytest

from tunerail import stats as S
from tunerail.cli import main
from tunerail.config import STARTER_CONFIG, CriteriaConfig, load_config
from tunerail.errors import ConfigError
from tunerail.eval.verdict import VerdictInputs, decide
from tunerail.findings import Severity


def _accuracy_inputs(correct: np.ndarray, base: np.ndarray, baselines=None) -> VerdictInputs:
    est = {"accuracy": S.bootstrap_ci(correct, resamples=1000).to_dict()}
    base_est = {"accuracy": S.bootstrap_ci(base, resamples=1000).to_dict()}
    imp = S.paired_bootstrap(correct, base, resamples=1000).to_dict()
    return VerdictInputs(
        "accuracy", est, base_est, imp, forgetting={"worst": 0.0, "relative_change": {}}, criteria_state="frozen", baselines=baselines
    )


def _by_code(findings, code):
    return next(f for f in findings if f.code == code)


def test_point_above_threshold_with_ci_below_fails_by_default_and_passes_with_point():
    # 100 rows, 42 correct: point 0.42 clears 0.40, the 95 % CI (about 0.32-0.52) does not
    correct = np.array([1.0] * 42 + [0.0] * 58)
    base = np.zeros(100)
    ci = CriteriaConfig(metric="accuracy", threshold=0.40, margin=0.5)
    verdict, findings = decide(ci, _accuracy_inputs(correct, base))
    f = _by_code(findings, "EVL001")
    assert verdict == "NOT READY" and Severity(f.severity) == Severity.ERROR
    assert "95 % CI lower bound (criteria.decision: ci)" in f.message
    assert "point estimate clears it but the interval does not" in f.message

    point = CriteriaConfig(metric="accuracy", threshold=0.40, margin=0.5, decision="point")
    verdict, findings = decide(point, _accuracy_inputs(correct, base))
    f = _by_code(findings, "EVL001")
    assert verdict == "READY" and Severity(f.severity) == Severity.INFO
    assert "point estimate (criteria.decision: point)" in f.message


def test_min_improvement_decided_on_the_gain_lower_bound():
    rng = np.random.default_rng(3)
    base = (rng.random(200) < 0.5).astype(float)
    tuned = base.copy()
    flip = np.flatnonzero(base == 0)[:24]  # +0.12 point gain, paired CI roughly +0.07 to +0.17
    tuned[flip] = 1.0
    crit = dict(metric="accuracy", min_improvement=0.10, margin=0.5)
    _, findings = decide(CriteriaConfig(**crit), _accuracy_inputs(tuned, base))
    f = _by_code(findings, "EVL002")
    assert Severity(f.severity) == Severity.ERROR and f.details["gain"] == pytest.approx(0.12)
    assert f.details["low"] < 0.10 < f.details["gain"]
    _, findings = decide(CriteriaConfig(**crit, decision="point"), _accuracy_inputs(tuned, base))
    assert Severity(_by_code(findings, "EVL002").severity) == Severity.INFO


def test_no_criterion_is_an_error_finding():
    correct = np.ones(50)
    verdict, findings = decide(CriteriaConfig(metric="accuracy", margin=0.5), _accuracy_inputs(correct, np.zeros(50)))
    assert verdict == "NOT READY" and Severity(_by_code(findings, "EVL008").severity) == Severity.ERROR


def test_config_file_without_criteria_is_refused_with_the_key_to_add(tmp_path, capsys):
    path = tmp_path / "tunerail.yaml"
    path.write_text("task: classification\ncriteria:\n  metric: accuracy\n  margin: 0.05\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    problem = err.value.problems[0]
    assert problem.field == "criteria.threshold" and problem.line == 2
    assert "criteria.threshold" in problem.message and "min_improvement" in problem.message
    assert main(["config", str(path)]) == 2
    assert "Traceback" not in capsys.readouterr().err
    path.write_text("task: classification\n")  # no criteria section at all
    with pytest.raises(ConfigError, match="no success criterion"):
        load_config(path)
    path.write_text("task: classification\ncriteria: {min_improvement: 0.1}\n")
    assert load_config(path).criteria.min_improvement == 0.1


def test_init_writes_both_criteria_with_a_comment(tmp_path):
    path = tmp_path / "tunerail.yaml"
    assert main(["init", str(path)]) == 0
    cfg = load_config(path)
    assert cfg.criteria.threshold is not None and cfg.criteria.min_improvement is not None
    assert cfg.criteria.decision == "ci" and cfg.criteria.baseline == "strongest"
    assert "At least one of threshold / min_improvement is required" in STARTER_CONFIG
