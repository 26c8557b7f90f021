"""`tunerail sweep` on the tiny random Llama: budget share, pruning, divergence, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from train_tiny import banking_rows, tiny_config, write_jsonl


@pytest.fixture
def splits(tmp_path: Path) -> tuple[Path, Path]:
    return (write_jsonl(tmp_path / "train.jsonl", banking_rows(64)),
            write_jsonl(tmp_path / "validation.jsonl", banking_rows(16, offset=1000)))


def _config(tmp_path, *, max_hours=1.0, space=None, trials=4, **train):
    cfg = tiny_config(tmp_path, **train)
    cfg.budget.max_hours = max_hours
    cfg.sweep.trials = trials
    cfg.sweep.space = space if space is not None else {}
    return cfg


def test_sweep_writes_study_outputs(tmp_path, splits):
    import tunerail

    cfg = _config(tmp_path, space={"epochs": 1, "batch_size": [8], "replay_ratio": None}, trials=3)
    result = tunerail.sweep(cfg, train_data=splits[0], validation_data=splits[1], out_dir=tmp_path / "sweep")
    assert result.counts.get("COMPLETE", 0) + result.counts.get("PRUNED", 0) == 3
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert saved["best_value"] == result.best_value and saved["share"]["used_seconds"] > 0
    assert "seed" not in saved["best_params"] and saved["best_params"]["epochs"] == 1
    best = (tmp_path / "sweep" / "best.yaml").read_text()
    assert "learning_rate" in best and "train:" in best
    html = (tmp_path / "sweep" / "report.html").read_text()
    assert "Optimization history" in html and "Plotly.newPlot" in html
    assert '<script src="http' not in html and "<script src='http" not in html  # plotly.js inline: opens offline
    for t in result.trials:
        assert t["params"]["epochs"] == 1 and 2e-5 <= t["params"]["learning_rate"] <= 2e-3
