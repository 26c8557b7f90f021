"""Criteria gating: fake per-example arrays in, READY / NOT READY with exact codes out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tunerail.cli import main
from tunerail.config import CriteriaConfig, TunerailConfig
from tunerail.errors import GuardrailError
from tunerail import stats as S
from tunerail.eval.frozen import check_frozen
from tunerail.eval.verdict import VerdictInputs, decide
from tunerail.data.records import RowRef
from tunerail.findings import Finding, Severity
from tunerail.io import hash_file


def _inputs(tuned_acc: float, base_acc: float, n: int = 400, **kw) -> VerdictInputs:
    rng = np.random.default_rng(0)
    tuned = (rng.random(n) < tuned_acc).astype(float)
    base = (rng.random(n) < base_acc).astype(float)
    est = {"accuracy": S.bootstrap_ci(tuned, resamples=500).to_dict()}
    base_est = {"accuracy": S.bootstrap_ci(base, resamples=500).to_dict()}
    imp = S.paired_bootstrap(tuned, base, resamples=500).to_dict()
    forgetting = kw.pop("forgetting", {"worst": 0.02, "relative_change": {"answer_nll": 0.02, "mc_accuracy": 0.0}})
    return VerdictInputs("accuracy", est, base_est, imp, forgetting=forgetting, criteria_state=kw.pop("state", "frozen"), **kw)


def _codes(findings, severity):
    return sorted(f.code for f in findings if Severity(f.severity) == severity)


CRIT = CriteriaConfig(metric="accuracy", threshold=0.7, min_improvement=0.1, margin=0.06, max_forgetting=0.1)


def test_passing_model_is_ready_and_every_criterion_is_listed():
    verdict, findings = decide(CRIT, _inputs(0.85, 0.3))
    assert verdict == "READY"
    assert _codes(findings, Severity.ERROR) == []
    assert {"EVL001", "EVL002", "EVL004", "EVL006"} <= set(_codes(findings, Severity.INFO))


def test_model_below_threshold_is_not_ready():
    verdict, findings = decide(CRIT, _inputs(0.55, 0.3))
    assert verdict == "NOT READY"
    assert _codes(findings, Severity.ERROR) == ["EVL001"]
    assert "fail" in next(f for f in findings if f.code == "EVL001").message


def test_too_small_gain_and_insignificant_improvement():
    verdict, findings = decide(CRIT, _inputs(0.80, 0.78))
    assert verdict == "NOT READY"
    assert "EVL002" in _codes(findings, Severity.ERROR)
    assert "EVL003" in _codes(findings, Severity.WARNING)


def test_small_test_set_fails_margin():
    verdict, findings = decide(CRIT, _inputs(0.85, 0.3, n=60))
    assert verdict == "NOT READY" and _codes(findings, Severity.ERROR) == ["EVL004"]


def test_forgetting_over_budget_and_per_class_floor():
    crit = CRIT.model_copy(update={"per_class_floor": 0.5})
    per_class = [{"label": "a", "recall": 0.9, "support": 10}, {"label": "b", "recall": 0.2, "support": 10}]
    verdict, findings = decide(
        crit, _inputs(0.85, 0.3, per_class=per_class, forgetting={"worst": 0.25, "relative_change": {"answer_nll": 0.25}})
    )
    assert verdict == "NOT READY"
    assert _codes(findings, Severity.ERROR) == ["EVL005", "EVL006"]
    assert next(f for f in findings if f.code == "EVL005").details["classes"] == ["b"]


def test_edited_criteria_unresolved_doctor_errors_and_leakage_block():
    doctor = [Finding("duplicates.conflicting_labels", Severity.ERROR, "x", "y", [RowRef(3, 4)], code="DOC012")]
    leak = [Finding("leakage.exact", Severity.ERROR, "test row in train", "re-split", [RowRef(1, 2)], code="SPL001")]
    verdict, findings = decide(CRIT, _inputs(0.85, 0.3, state="edited", doctor_findings=doctor, leakage_findings=leak))
    assert verdict == "NOT READY"
    assert _codes(findings, Severity.ERROR) == ["EVL010", "EVL020", "EVL021"]
    assert "criteria changed after the test set was frozen" in next(f for f in findings if f.code == "EVL010").message


def test_judge_preferring_base_blocks_and_bias_warns():
    judge = {
        "pairs": 20,
        "calls": 40,
        "tuned_win_rate": 0.1,
        "base_win_rate": 0.4,
        "position_consistency": 0.5,
        "parse_failures": 3,
        "request_failures": 1,
    }
    verdict, findings = decide(CRIT, _inputs(0.85, 0.3, judge=judge))
    assert verdict == "NOT READY"
    assert _codes(findings, Severity.ERROR) == ["EVL030"]
    assert {"EVL031", "EVL032"} <= set(_codes(findings, Severity.WARNING))


# --- the frozen test set --------------------------------------------------------------------


def _split_json(tmp_path, test, criteria_hash):
    """The layout `tunerail split` writes: the split's record in the store, split.json pointing at it."""
    from tunerail.store import Store

    store = Store(tmp_path / "store")
    meta = {
        "criteria_hash": criteria_hash,
        "frozen": {"file": test.name, "sha256": hash_file(test)},
        "hashes": {test.name: hash_file(test)},
    }
    artifact = store.add("split", {test.name: test}, meta=meta)
    path = tmp_path / "split.json"
    path.write_text(json.dumps({**meta, "store": {"root": str(store.root), "split_id": artifact.id}}))
    return path


def test_changed_test_set_is_refused_and_edited_criteria_flagged(tmp_path):
    cfg = TunerailConfig()
    test = tmp_path / "test.jsonl"
    test.write_text('{"text": "my card", "label": "card_arrival"}\n')
    split = _split_json(tmp_path, test, cfg.criteria_hash())
    assert check_frozen(test, split, cfg.criteria_hash())["criteria_state"] == "frozen"
    edited = cfg.model_copy(deep=True)
    edited.criteria.threshold = 0.1  # lowered after seeing results
    assert check_frozen(test, split, edited.criteria_hash())["criteria_state"] == "edited"
    test.write_text('{"text": "my card", "label": "card_arrival"}\n{"text": "easy row", "label": "x"}\n')
    with pytest.raises(GuardrailError, match="test set changed"):
        check_frozen(test, split, cfg.criteria_hash())


def test_cli_refuses_changed_test_set_with_exit_2(tmp_path, capsys):
    cfg = TunerailConfig()
    test = tmp_path / "test.jsonl"
    test.write_text('{"text": "a", "label": "b"}\n')
    split = _split_json(tmp_path, test, cfg.criteria_hash())
    test.write_text('{"text": "a", "label": "c"}\n')
    code = main(["eval", "--test", str(test), "--split-json", str(split), "--out", str(tmp_path / "out")])
    assert code == 2
    assert "test set changed" in capsys.readouterr().err


def test_split_store_manifest_layout_is_understood(tmp_path):
    """The layout `tunerail split` writes: frozen.sha256 and hashes["test.jsonl"]."""
    test = tmp_path / "test.jsonl"
    test.write_text('{"text": "a", "label": "b"}\n')
    digest = hash_file(test)
    split = _split_json(tmp_path, test, "x")
    assert check_frozen(test, split, "x")["recorded_test_hash"] == digest
    pointer = json.loads(split.read_text())
    split.write_text(json.dumps({**pointer, "frozen": {"file": "test.jsonl", "sha256": "f" * 64}}))
    with pytest.raises(GuardrailError):
        check_frozen(test, split, "x")


def test_zero_correct_of_38_does_not_pass_the_margin_check():
    """The bootstrap of 0/38 has width 0; the Wilson interval [0, 0.092] fails a 0.05 margin."""
    zeros = np.zeros(38)
    est = S.mean_ci(zeros, resamples=200).to_dict()
    assert est["interval"] == "wilson" and est["high"] == pytest.approx(0.092, abs=1e-3)
    inputs = VerdictInputs(
        "accuracy", {"accuracy": est}, {"accuracy": est}, None, forgetting={"worst": 0.0, "relative_change": {}}, criteria_state="frozen"
    )
    margin = next(f for f in decide(CriteriaConfig(metric="accuracy", margin=0.05), inputs)[1] if f.code == "EVL004")
    assert Severity(margin.severity) == Severity.ERROR and "wilson" in margin.message
    assert S.mean_ci(np.array([0.2, 0.4, 0.9]), resamples=200).extra["interval"] == "percentile bootstrap"


def test_a_judge_whose_calls_all_failed_blocks_the_verdict():
    judge = {
        "pairs": 38,
        "calls": 76,
        "tuned_win_rate": 0.0,
        "base_win_rate": 0.0,
        "position_consistency": None,
        "parse_failures": 0,
        "request_failures": 76,
    }
    verdict, findings = decide(CRIT, _inputs(0.85, 0.3, judge=judge))
    assert verdict == "NOT READY" and _codes(findings, Severity.ERROR) == ["EVL032"]
    assert "could not judge" in next(f for f in findings if f.code == "EVL032").message
    assert not any(f.code == "EVL030" for f in findings)  # no "pass: tuned wins 0 %"
    few = {**judge, "request_failures": 3}
    assert _codes(decide(CRIT, _inputs(0.85, 0.3, judge=few))[1], Severity.WARNING) == ["EVL032"]


def test_margin_of_a_0_to_100_metric_is_a_share_of_its_range():
    """chrF and BLEU are on sacrebleu's 0-100 scale: a +/-2.4-point CI meets a 0.05 margin (5 points), +/-6 does not."""
    rng = np.random.default_rng(0)
    stats = {"chrf": S.bootstrap_ci(rng.normal(55, 25, 400), resamples=500).to_dict()}
    half = S.margin_of(stats["chrf"])
    assert 1.0 < half < 5.0  # in chrF points: bigger than the margin as a raw number, smaller as a share of 100
    inputs = VerdictInputs("chrf", stats, stats, None, forgetting={"worst": 0.0, "relative_change": {}}, criteria_state="frozen")
    margin = next(f for f in decide(CriteriaConfig(metric="chrf", margin=0.05), inputs)[1] if f.code == "EVL004")
    assert Severity(margin.severity) == Severity.INFO and "criterion <= 5" in margin.message
    wide = {"chrf": S.bootstrap_ci(rng.normal(55, 60, 400), resamples=500).to_dict()}
    inputs = VerdictInputs("chrf", wide, wide, None, forgetting={"worst": 0.0, "relative_change": {}}, criteria_state="frozen")
    assert S.margin_of(wide["chrf"]) > 5.0
    margin = next(f for f in decide(CriteriaConfig(metric="chrf", margin=0.05), inputs)[1] if f.code == "EVL004")
    assert Severity(margin.severity) == Severity.ERROR
