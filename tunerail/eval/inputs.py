"""What one evaluation is given: the inputs besides the config, and reading them (rows, k-shot examples, train.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from tunerail import tasks as T
from tunerail.config import DEFAULT_METRIC, TunerailConfig
from tunerail.data.loaders import load_usable_records
from tunerail.data.records import Record, Rejection
from tunerail.errors import Problem, TunerailError
from tunerail.eval.inference import ProgressFn
from tunerail.findings import Finding


@dataclass
class EvalInputs:
    """Everything one evaluation reads besides the config: the parameters of :func:`evaluate`, documented there."""

    test_data: str | Path | Sequence[Record]
    out_dir: str | Path
    adapter_dir: str | Path | None = None
    base_model: str | None = None
    train_json: str | Path | None = None
    split_json: str | Path | None = None
    doctor_findings: Sequence[Finding] | None = None
    leakage_findings: Sequence[Finding] | None = None
    progress: ProgressFn | None = None
    few_shot_data: str | Path | Sequence[Record] | None = None
    lineage: dict[str, Any] | None = None
    prompt_comparison: dict[str, Any] | None = None
    cache_dir: str | Path | None = "default"
    train_data: str | Path | Sequence[Record] | None = None
    validation_data: str | Path | Sequence[Record] | None = None
    allow_changed_adapter: bool = False


def load_rows(config: TunerailConfig, data: str | Path | Sequence[Record]) -> tuple[list[Record], list[Rejection]]:
    if not isinstance(data, (str, Path)):
        return list(data), []
    return load_usable_records(
        data, config, missing="test data not found", missing_fix="pass --test PATH (test.jsonl from `tunerail split`)"
    )


def task_of(config: TunerailConfig, records: Sequence[Record]) -> str:
    T.check_labels(config.task, records)
    return config.task


def metric_of(config: TunerailConfig) -> str:
    """The main metric: ``criteria.metric``, which the config fills with the task's default when it loads."""
    return config.criteria.metric or DEFAULT_METRIC[config.task]


def read_training(train_json: str | Path | None) -> dict[str, Any] | None:
    if train_json is None:
        return None
    path = Path(train_json)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TunerailError(
            Problem("train.json not found", file=str(path), fix="pass the train.json written by `tunerail train`")
        ) from None
    except ValueError as exc:
        raise TunerailError(Problem(f"train.json is not valid JSON ({exc})", file=str(path))) from None
    # the keys of TrainResult.to_dict(): ``stopped_reason`` (completed | early_stopping | divergence | budget), ``actual.seconds``
    out: dict[str, Any] = {"history": data.get("history", []), "path": str(path)}
    out.update({k: data[k] for k in ("stopped_reason", "best_step", "run_id", "selection") if k in data})
    if "stopped_reason" in data:
        out["stopped_early"] = data["stopped_reason"] == "early_stopping"
    if isinstance(data.get("actual"), dict) and "seconds" in data["actual"]:
        out["wall_s"] = data["actual"]["seconds"]
    return out
