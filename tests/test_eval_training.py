"""The train -> eval hand-off: what eval reports about training comes from what train writes."""

from __future__ import annotations

import json
from pathlib import Path

from tunerail.eval.inputs import read_training as _read_training
from tunerail.findings import Finding, Severity
from tunerail.train.recipe import TrainResult


def _train_json(tmp_path: Path, stopped_reason: str, seconds: float) -> Path:
    """A train.json exactly as ``tunerail train`` writes it (``TrainResult.to_dict()``)."""
    history = [
        {"step": 5, "train_loss": 2.1, "val_loss": 2.3, "tokens": 900},
        {"step": 10, "train_loss": 1.7, "val_loss": 2.4, "tokens": 1800},
    ]
    result = TrainResult(
        adapter_dir=tmp_path / "adapter",
        base_model="bundled:smollm2",
        method="lora",
        checkpoint_id=None,
        run_id="abc123",
        tracking_uri=None,
        history=history,
        best_step=5,
        best_val_loss=2.3,
        stopped_reason=stopped_reason,
        estimate=None,
        actual={"steps": 10, "tokens": 1800, "seconds": seconds},
        findings=[Finding("train.early_stop", Severity.INFO, "stopped", "none")],
        guards_disabled=[],
        parameters={"trainable": 10, "total": 100},
        padding_waste=0.1,
    )
    path = tmp_path / "train.json"
    path.write_text(json.dumps(result.to_dict(), default=str), encoding="utf-8")
    return path


def test_eval_reads_stop_reason_and_wall_time_that_train_writes(tmp_path):
    training = _read_training(_train_json(tmp_path, "early_stopping", 12.5))
    assert training["stopped_early"] is True and training["stopped_reason"] == "early_stopping"
    assert training["wall_s"] == 12.5 and training["best_step"] == 5 and training["run_id"] == "abc123"
    assert [h["step"] for h in training["history"]] == [5, 10]
    completed = _read_training(_train_json(tmp_path, "completed", 3.0))
    assert completed["stopped_early"] is False and completed["wall_s"] == 3.0
