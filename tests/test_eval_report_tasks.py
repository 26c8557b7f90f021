"""report.html renders for every task, not only classification (tiny random Llama, real rows)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from eval_fixtures import cached_tiny_pair, write_jsonl  # noqa: E402

from tunerail.config import TunerailConfig  # noqa: E402

WNUT = Path(__file__).resolve().parent.parent / "examples" / "wnut17" / "posts.jsonl"


@pytest.fixture(scope="module")
def tiny():
    return cached_tiny_pair()


def _rows(n: int) -> list[dict]:
    lines = WNUT.read_text(encoding="utf-8").splitlines()
    return [json.loads(x) for x in lines[:n]]


def _extraction_config() -> TunerailConfig:
    return TunerailConfig.model_validate(
        {
            "task": "extraction",
            "data": {"format": "prompt_completion", "columns": {"prompt": "text", "completion": "entities"}},
            "prompts": [{"version": "v1", "system": "Extract people and locations as JSON."}],
            "criteria": {"metric": "field_f1", "threshold": 0.4, "margin": 0.5},
            "eval": {"forgetting": False, "bootstrap": 200, "max_new_tokens": 8},
        }
    )


def test_extraction_report_renders_without_mcnemar(tiny, tmp_path):
    """Regression: eval.html read ``significance.mcnemar``, which only classification has (UndefinedError)."""
    import tunerail

    model, adapter = tiny
    test = write_jsonl(tmp_path / "test.jsonl", _rows(8))
    res = tunerail.evaluate(
        _extraction_config(), test_data=test, adapter_dir=adapter, base_model=str(model), out_dir=tmp_path / "out", cache_dir=None
    )
    assert "mcnemar" not in res.significance
    html = Path(res.report_html).read_text(encoding="utf-8")
    assert "field_f1" in html and "McNemar" not in html
    assert json.loads(Path(res.report_json).read_text(encoding="utf-8"))["task"] == "extraction"


def test_extraction_nearest_neighbour_baseline(tiny, tmp_path):
    """Generation/extraction: the answer of the most similar training prompt, scored with the task metric."""
    import tunerail
    from tunerail.eval.alternatives import FitData, fit_one
    from tunerail.eval.alternatives.neighbours import NEAREST_NEIGHBOUR

    rows = _rows(160)
    train, test = rows[:150], rows[150:]
    # a test prompt that is also a training prompt gets that row's answer
    nn = fit_one(
        NEAREST_NEIGHBOUR, FitData("extraction", [r["text"] for r in train], [r["entities"] for r in train], [], [], [train[7]["text"]])
    )
    assert nn.predictions == [train[7]["entities"]] and nn.details["mean_similarity"] == pytest.approx(1.0, abs=1e-5)

    model, adapter = tiny
    res = tunerail.evaluate(
        _extraction_config(),
        test_data=write_jsonl(tmp_path / "test.jsonl", test),
        train_data=write_jsonl(tmp_path / "train.jsonl", train),
        adapter_dir=adapter,
        base_model=str(model),
        out_dir=tmp_path / "out",
        cache_dir=None,
    )
    row = next(b for b in res.baselines if b["name"] == "nearest_neighbour")
    assert row["kind"] == "cheap" and row["details"]["fit_rows"] == 150
    assert 0 <= row["estimate"]["value"] <= 1 and row["gain"] is not None
    assert "nearest_neighbour" in res.metrics and "json_valid" in res.metrics["nearest_neighbour"]
    assert res.metrics["nearest_neighbour"]["json_valid"]["value"] == 1.0  # training answers are valid JSON
    assert any(f.code == "EVL050" and f.details["baseline"] == "nearest_neighbour" for f in res.findings)


def test_perplexity_can_be_switched_off_but_not_for_a_perplexity_criterion(tiny, tmp_path):
    """eval.perplexity: false skips the two reference forward passes (~2 min of the extraction demo's eval)."""
    import tunerail

    model, adapter = tiny
    test = write_jsonl(tmp_path / "test.jsonl", _rows(8))
    cfg = _extraction_config().model_copy(deep=True)
    cfg.eval.perplexity = False
    res = tunerail.evaluate(cfg, test_data=test, adapter_dir=adapter, base_model=str(model), out_dir=tmp_path / "off", cache_dir=None)
    assert "perplexity" not in res.metrics["tuned"] and "perplexity" not in res.metrics["base"]
    assert not any("perplexity" in k for k in res.timings)
    on = tunerail.evaluate(
        _extraction_config(), test_data=test, adapter_dir=adapter, base_model=str(model), out_dir=tmp_path / "on", cache_dir=None
    )
    assert "perplexity" in on.metrics["tuned"] and "tuned_perplexity_s" in on.timings
    cfg.criteria.metric, cfg.criteria.threshold = "perplexity", 1e6
    forced = tunerail.evaluate(cfg, test_data=test, adapter_dir=adapter, base_model=str(model), out_dir=tmp_path / "forced", cache_dir=None)
    assert "perplexity" in forced.metrics["tuned"]
