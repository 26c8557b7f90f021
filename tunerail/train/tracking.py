"""MLflow run tracking, imported only when a run starts.

Default: a local SQLite store and artifact folder next to the tunerail store (``.tunerail/``);
any tracking URI (a team server backed by PostgreSQL...) via ``tracking.mlflow_uri``. A resumed
run continues the same MLflow run. Only the main process of a distributed run logs.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from tunerail.pii import mask, mask_value


class NullTracker:
    """Tracking switched off (or a non-main process): every call is a no-op."""

    run_id: str | None = None
    uri: str | None = None

    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def log_dict(self, data: dict[str, Any], name: str) -> None: ...
    def log_artifacts(self, folder: Path, path: str) -> None: ...
    def end(self, status: str = "FINISHED") -> None: ...


class MlflowTracker(NullTracker):
    """One MLflow run, through ``MlflowClient`` (no global state shared with user code)."""

    def __init__(self, uri: str, experiment: str, *, artifact_root: Path | None, run_id: str | None, run_name: str):
        import mlflow
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self._client = MlflowClient(tracking_uri=uri)
        found = self._client.get_experiment_by_name(experiment)
        if found is None:
            location = artifact_root.resolve().as_uri() if artifact_root is not None else None
            experiment_id = self._client.create_experiment(experiment, artifact_location=location)
        else:
            experiment_id = found.experiment_id
        if run_id is not None:
            self._client.update_run(run_id, status="RUNNING")
        else:
            run_id = self._client.create_run(experiment_id, run_name=run_name).info.run_id
        self.run_id: str = run_id
        self._mlflow = mlflow

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        existing = self._client.get_run(self.run_id).data.params
        fresh = [Param(k, mask(str(v))[:6000]) for k, v in params.items() if k not in existing]  # a token in a config value
        for i in range(0, len(fresh), 100):
            self._client.log_batch(self.run_id, params=fresh[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None])

    def set_tags(self, tags: dict[str, str]) -> None:
        for k, v in tags.items():
            self._client.set_tag(self.run_id, k, mask(str(v)))

    def log_dict(self, data: dict[str, Any], name: str) -> None:
        self._client.log_text(self.run_id, json.dumps(mask_value(data), indent=2, default=str), name)

    def log_artifacts(self, folder: Path, path: str) -> None:
        self._client.log_artifacts(self.run_id, str(folder), artifact_path=path)

    def end(self, status: str = "FINISHED") -> None:
        self._client.set_terminated(self.run_id, status=status)


def default_uri(store_root: Path) -> tuple[str, Path]:
    """``sqlite:///<.tunerail>/mlflow.db`` and ``<.tunerail>/mlruns`` beside the store."""
    home = Path(store_root).resolve().parent
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'mlflow.db'}", home / "mlruns"


def start_tracking(config: Any, store_root: Path, *, run_id: str | None, run_name: str, main_process: bool) -> NullTracker:
    if not main_process or not config.tracking.enabled:
        return NullTracker()
    if config.tracking.mlflow_uri:
        uri, artifacts = config.tracking.mlflow_uri, None
    else:
        uri, artifacts = default_uri(store_root)
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # alembic migration chatter on first use
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return MlflowTracker(uri, config.tracking.experiment, artifact_root=artifacts, run_id=run_id, run_name=run_name)


def environment() -> dict[str, str]:
    """Versions and hardware, logged with every run (what a reproduction needs)."""
    import importlib.metadata as md

    import torch

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": str(torch.cuda.is_available()),
        "cpu_threads": str(torch.get_num_threads()),
    }
    for pkg in ("transformers", "peft", "accelerate", "mlflow", "tunerail"):
        try:
            env[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            from tunerail import __version__

            env[pkg] = __version__ if pkg == "tunerail" else "not installed"
    return env
