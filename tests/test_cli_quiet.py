"""Third-party bars, INFO lines and deprecation warnings stay off the terminal unless --verbose."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from train_tiny import banking_rows, tiny_model_dir, write_jsonl

REPO = Path(__file__).resolve().parent.parent
NOISE = ("Loading weights", "FutureWarning", "DeprecationWarning", "warnings.warn", " INFO ", "alembic")


def _train_cli(tmp_path: Path, name: str, *extra: str) -> str:
    config = {
        "task": "classification",
        "criteria": {"threshold": 0.5},
        "model": {"base": str(tiny_model_dir()), "max_seq_length": 96},
        "prompts": [{"system": "Classify the banking query.", "template": "{prompt}"}],
        "train": {"epochs": 0.25, "batch_size": 8, "bf16": False, "probe_steps": 1},
        "tracking": {"enabled": True},
        "store": {"path": str(tmp_path / "store")},
    }
    cfg = tmp_path / "tunerail.yaml"
    cfg.write_text(json.dumps(config))
    train = write_jsonl(tmp_path / "train.jsonl", banking_rows(64))
    val = write_jsonl(tmp_path / "validation.jsonl", banking_rows(16, offset=1000))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY", "MLFLOW_LOGGING_LEVEL")
    }
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", COLUMNS="200")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tunerail",
            "train",
            "-c",
            str(cfg),
            "--train",
            str(train),
            "--validation",
            str(val),
            "--out",
            str(tmp_path / name),
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow  # two CLI trainings in subprocesses
def test_train_output_is_quiet_and_verbose_lets_the_rest_through(tmp_path):
    quiet = _train_cli(tmp_path, "quiet")
    assert not [n for n in NOISE if n in quiet], quiet[-3000:]
    assert "data: 64 train rows" in quiet and "estimate" in quiet and "training history" in quiet  # our own output
    loud = _train_cli(tmp_path, "loud", "--verbose")
    assert "Loading weights" in loud and "training history" in loud


def test_every_command_goes_through_the_one_quiet_switch():
    # One place (tunerail.logs via cli._common.guarded): run and train offer --verbose.
    import inspect

    from tunerail.cli import run, train

    for command in (run.run_pipeline, train.train_command):
        assert "verbose" in inspect.signature(command).parameters
        assert command.__wrapped__  # wrapped by guarded, which calls tunerail.logs.configure
    code = (
        "import warnings, tunerail.logs as l; l.configure(); import os\n"
        "assert os.environ['HF_HUB_DISABLE_PROGRESS_BARS'] == '1' and l.is_quiet()\n"
        "import logging; assert logging.getLogger('mlflow').level == logging.WARNING\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
