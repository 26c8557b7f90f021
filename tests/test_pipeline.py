"""`tunerail run` end to end on real Banking77 rows with a tiny random model (fast, not realistic).

A random model cannot classify, so the verdict must be NOT READY with the criterion named;
a second run must skip every step; editing only the eval settings re-runs only eval.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from train_tiny import BANKING, tiny_model_dir
from tunerail.cli import main
from tunerail.pipeline import run


def _project(tmp_path: Path, eval_tokens: int = 8) -> Path:
    with open(BANKING, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    labels = sorted({r["category"] for r in rows})[:4]
    picked = [r for r in rows if r["category"] in labels][:240]
    with open(tmp_path / "data.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows(picked)
    config = {
        "project": "tiny",
        "task": "classification",
        "data": {"path": "data.csv", "format": "text_label", "columns": {"text": "text", "label": "category"}},
        "model": {"base": str(tiny_model_dir()), "max_seq_length": 96},
        "prompts": [{"version": "v1", "system": "Route the banking query.", "template": "{prompt}"}],
        "criteria": {"metric": "accuracy", "threshold": 0.9, "margin": 0.15, "max_forgetting": 0.5},
        "doctor": {"semantic": False},
        "split": {"train": 0.6, "validation": 0.2, "test": 0.2, "seed": 3, "semantic": False},
        "train": {"epochs": 1, "batch_size": 16, "bf16": False, "probe_steps": 0},
        "eval": {"max_new_tokens": eval_tokens, "batch_size": 32, "forgetting": False, "bootstrap": 200},
        "tracking": {"enabled": False},
        "store": {"path": "store"},
    }
    path = tmp_path / "tunerail.yaml"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is valid YAML
    return path


@pytest.mark.slow
def test_run_chains_every_step_then_skips_unchanged_ones(tmp_path):
    config = _project(tmp_path)
    first = run(config, out_dir=tmp_path / "run")
    assert [s.name for s in first.steps] == ["doctor", "split", "leakage", "train", "eval"]
    assert not any(s.skipped for s in first.steps)
    assert first.verdict == "NOT READY"
    report = json.loads((tmp_path / "run" / "eval" / "report.json").read_text())
    failed = [f for f in report["findings"] if f["severity"] == "error"]
    assert any("threshold" in f["message"] or "accuracy" in f["message"] for f in failed)
    assert (tmp_path / "run" / "eval" / "report.html").exists()

    second = run(config, out_dir=tmp_path / "run")
    assert all(s.skipped for s in second.steps) and second.verdict == "NOT READY"

    config.write_text(config.read_text().replace('"max_new_tokens": 8', '"max_new_tokens": 6'))
    third = run(config, out_dir=tmp_path / "run")
    assert [s.name for s in third.steps if not s.skipped] == ["eval"]

    assert main(["run", str(config), "--out", str(tmp_path / "run")]) == 1  # NOT READY gates CI


def test_run_prints_the_doctor_table_before_training(tmp_path, monkeypatch, capsys):
    """Issue 13 §8: `tunerail run` shows what the doctor found (here 12 empty labels) before training starts."""
    import tunerail.train
    from tunerail.errors import TunerailError

    config = _project(tmp_path)
    data = tmp_path / "data.csv"
    lines = data.read_text(encoding="utf-8").splitlines()
    for i in range(1, 13):  # 12 rows lose their label
        lines[i] = lines[i].rsplit(",", 1)[0] + ","
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    seen_before_training = []

    def no_training(*args, **kwargs):
        captured = capsys.readouterr()
        seen_before_training.append(captured.out + captured.err)
        raise TunerailError("training stopped by the test")

    monkeypatch.setattr(tunerail.train, "train", no_training)
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["run", str(config), "--out", str(tmp_path / "run")]) == 2
    printed = seen_before_training[0]
    row = next(line for line in printed.splitlines() if "format.missing_field" in line)
    assert "DOC002" in row and "error" in row and "12" in row
    assert "unresolved" in printed
