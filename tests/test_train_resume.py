"""Reliability: kill -9 mid-run then --resume gives the same adapter (2-process DDP: test_train_distributed.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from train_tiny import banking_rows, tiny_model_dir, write_jsonl

HELPER = Path(__file__).with_name("train_tiny.py")
REPO = HELPER.parent.parent


def _env() -> dict[str, str]:
    env = dict(
        os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{HELPER.parent}", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1"
    )
    return env


@pytest.fixture
def splits(tmp_path: Path) -> tuple[Path, Path]:
    tiny_model_dir()  # build the cached model once, before subprocesses race for it
    return (
        write_jsonl(tmp_path / "train.jsonl", banking_rows(96)),
        write_jsonl(tmp_path / "validation.jsonl", banking_rows(24, offset=1000)),
    )


def _run(out: Path, splits, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HELPER), str(out), str(splits[0]), str(splits[1]), *extra],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _step(out: Path) -> int:
    latest = out / "checkpoints" / "latest.json"
    try:
        return json.loads(latest.read_text())["step"]
    except (OSError, ValueError):
        return -1


def _strip(history: list[dict]) -> list[dict]:
    """History without wall-clock seconds (everything else must match exactly)."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path, splits):
    reference = _run(tmp_path / "a" / "run", splits)  # in parallel with the killed run
    killed_out = tmp_path / "b" / "run"
    victim = _run(killed_out, splits)
    deadline = time.time() + 240
    while _step(killed_out) < 5 and victim.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert victim.poll() is None, "the run finished before it could be killed: " + victim.stderr.read()[-2000:]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not (killed_out / "rank0.json").exists() and 5 <= _step(killed_out) < 20
    resumed = _run(killed_out, splits, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()[-3000:]
    assert reference.wait(timeout=300) == 0, reference.stderr.read()[-3000:]
    a = json.loads((tmp_path / "a" / "run" / "rank0.json").read_text())
    b = json.loads((killed_out / "rank0.json").read_text())
    assert a["adapter_sha"] == b["adapter_sha"]  # bitwise-identical best adapter
    assert a["sha"] == b["sha"] is not None  # and identical final weights in memory
    assert _strip(a["history"]) == _strip(b["history"]) and a["history"][-1]["step"] == 20


def test_run_offers_the_resume_it_names(tmp_path, capsys):
    # The message after a killed training says "pass --resume": `tunerail run` must have that option.
    from tunerail.cli import main

    assert main(["run", "--help"]) == 0
    assert "--resume" in capsys.readouterr().out


@pytest.mark.slow
def test_run_resumes_a_killed_training(tmp_path, capsys):
    import contextlib

    from test_pipeline import _project
    from tunerail.cli import main
    from tunerail.pipeline import run

    config = _project(tmp_path)

    @contextlib.contextmanager
    def killing(step):
        def callback(event, info):
            if event == "step" and info["step"] == 2:
                raise KeyboardInterrupt  # as a Ctrl-C or kill would, after the step-0 checkpoint

        yield callback if step == "train" else None

    with pytest.raises(KeyboardInterrupt):
        run(config, out_dir=tmp_path / "run", progress=killing)
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(tmp_path / "run")]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(["run", str(config), "--out", str(tmp_path / "run"), "--resume"]) == 1  # ran to a (NOT READY) verdict
    assert "resuming from step" in capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "train" / "train.json").read_text())["actual"]["steps"] > 2
