"""Two `tunerail sweep` workers on one real PostgreSQL study; a SIGKILLed worker's trial is retried.

Needs a PostgreSQL server (``tests/pg.py`` starts a throwaway one; skipped with the reason when
none can be started, a failure under CI=1).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from train_tiny import REPO, banking_rows, tiny_model_dir, write_jsonl

pytestmark = pytest.mark.slow


def _worker(cfg: Path, url: str, study: str, out: Path, splits: tuple[Path, Path], trials: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
    }
    log = open(out.with_suffix(".log"), "w")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tunerail",
            "sweep",
            "--config",
            str(cfg),
            "--storage",
            url,
            "--study",
            study,
            "--out",
            str(out),
            "--train",
            str(splits[0]),
            "--validation",
            str(splits[1]),
            "--trials",
            str(trials),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def test_two_workers_share_a_study_and_a_killed_trial_is_retried(tmp_path, postgres_url):
    import optuna

    splits = (
        write_jsonl(tmp_path / "train.jsonl", banking_rows(32)),
        write_jsonl(tmp_path / "validation.jsonl", banking_rows(8, offset=1000)),
    )
    cfg = tmp_path / "tunerail.yaml"
    cfg.write_text(
        json.dumps(
            {
                "task": "classification",
                "criteria": {"threshold": 0.5},
                "model": {"base": str(tiny_model_dir()), "max_seq_length": 128},
                "train": {"bf16": False, "probe_steps": 0, "epochs": 6},
                "budget": {"max_hours": 2.0},
                "tracking": {"enabled": False},
                "store": {"path": str(tmp_path / "store")},
                "sweep": {"pruner": "none", "heartbeat_seconds": 4, "space": {"epochs": 6, "batch_size": [8], "replay_ratio": None}},
            }
        )
    )
    study = "two-workers"
    storage = optuna.storages.RDBStorage(postgres_url)

    # Worker A starts a trial and is SIGKILLed after its first evaluation.
    a = _worker(cfg, postgres_url, study, tmp_path / "a", splits, trials=3)
    deadline = time.time() + 240
    killed = None
    while time.time() < deadline and killed is None:
        time.sleep(0.5)
        try:
            running = optuna.load_study(study_name=study, storage=storage).get_trials(states=(optuna.trial.TrialState.RUNNING,))
        except KeyError:  # study not created yet
            continue
        if running and running[0].intermediate_values:
            a.send_signal(signal.SIGKILL)
            killed = running[0]
    a.kill()  # already dead when the loop found a trial; never left running when it did not
    a.wait(30)
    assert killed is not None, (tmp_path / "a.log").read_text()[-2000:]

    # Two workers on the same study: one picks the dead trial up (same parameters), both share the count.
    workers = [_worker(cfg, postgres_url, study, tmp_path / name, splits, trials=3) for name in ("b", "c")]
    try:
        for w, name in zip(workers, ("b", "c")):
            assert w.wait(600) == 0, (tmp_path / f"{name}.log").read_text()[-2000:]
    finally:
        for w in workers:
            w.kill()

    trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    by_number = {t.number: t for t in trials}
    assert by_number[killed.number].state == optuna.trial.TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params
    assert retries[0].state == optuna.trial.TrialState.COMPLETE
    counted = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    # 3 asked for; a worker already inside a trial when the count is reached finishes it (at most one per extra worker).
    assert 3 <= len(counted) <= 4
    assert len({t.user_attrs["worker"] for t in counted}) == 2  # both workers ran trials of the one study
    # Each worker's report sees the whole study, the failed trial listed once, not counted.
    saved = json.loads((tmp_path / "c" / "sweep.json").read_text())
    assert saved["counts"].get("FAIL") == 1 and len(saved["trials"]) == len(trials)
    assert saved["share"]["used_seconds"] <= saved["share"]["allowed_seconds"]
