"""Run folders for the serve and monitor tests: real Banking77 rows, the tiny random Llama + adapter.

``make_run`` writes the ``tunerail run`` layout (config, train/train.json, train/adapter,
split/train.jsonl, split/test.jsonl) so serve and monitor resolve it exactly as a real run.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from train_tiny import banking_rows


REPO = Path(__file__).resolve().parent.parent
OOS_FIXTURE = REPO / "tests" / "data" / "clinc150_oos.jsonl"


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def banking_shuffled() -> list[dict[str, str]]:
    """All 1,500 bundled Banking77 rows in a fixed random order (the file is sorted by intent)."""
    import random

    rows = banking_rows(1500)
    random.Random(0).shuffle(rows)
    return rows


def make_run(
    root: Path,
    *,
    n_train: int = 1000,
    n_test: int = 400,
    adapter: bool = True,
    serve: dict[str, Any] | None = None,
    monitor: dict[str, Any] | None = None,
) -> Path:
    """A run folder over Banking77 (text, category) with the tiny model; returns the run folder."""
    from eval_fixtures import cached_tiny_pair

    model_dir, adapter_dir = cached_tiny_pair()
    run = root / "run"
    rows = banking_shuffled()
    write_rows(run / "split" / "train.jsonl", rows[:n_train])
    write_rows(run / "split" / "test.jsonl", rows[n_train : n_train + n_test])
    cfg = {
        "project": "banking-serve",
        "task": "classification",
        "data": {"format": "text_label", "columns": {"text": "text", "label": "category"}},
        "model": {"base": str(model_dir), "max_seq_length": 128},
        "prompts": [{"system": "Route the banking query. Answer with the intent label only.", "template": "{prompt}"}],
        "criteria": {"threshold": 0.5},
        "tracking": {"enabled": False},
        "serve": serve or {},
        "monitor": monitor or {},
    }
    (run / "tunerail.yaml").write_text(json.dumps(cfg, indent=2), encoding="utf-8")  # JSON is YAML
    (run / "train").mkdir(parents=True, exist_ok=True)
    (run / "train" / "train.json").write_text(json.dumps({"base_model": str(model_dir)}), encoding="utf-8")
    if adapter:
        shutil.copytree(adapter_dir, run / "train" / "adapter", dirs_exist_ok=True)
    return run


def oos_rows() -> list[dict[str, str]]:
    """CLINC150 out-of-scope queries (CC-BY-3.0, tests/data/ATTRIBUTION.md)."""
    with open(OOS_FIXTURE, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@contextlib.contextmanager
def running_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields the base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
