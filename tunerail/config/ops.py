"""Sections ``serve``, ``monitor``, ``pipeline``, ``tracking`` and ``store``: running the model and the run's bookkeeping."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunerail.config.base import _Section


class ServeConfig(_Section):
    host: str = Field("127.0.0.1", description="Address to bind; loopback by default.")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on (0 = any free port).")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key; when set, requests need it.")
    mask_pii: bool = Field(True, description="Mask personal data and secrets in the traffic log (the doctor's masker).")
    max_new_tokens: int = Field(64, ge=1, description="Default generation cap when a request sets none.")
    max_batch_size: int = Field(
        8,
        ge=1,
        description=(
            "Concurrent requests decoded together in one batched generate (left padding; greedy requests together, "
            "sampled ones with equal settings). 1 generates one request at a time. A step reads the weights once for all "
            "rows, so 4 clients get several times the tokens/s of one (bench/monitor.py --serve-only)."
        ),
    )
    batch_window_ms: float = Field(
        10.0,
        ge=0,
        le=1000,
        description=(
            "How long the queue waits for more requests to join a batch: this, or one decoding step of the previous batch "
            "if longer (capped at 1 s), so a lone request waits about one token's time at most."
        ),
    )
    log_max_mb: float = Field(50.0, gt=0, description="Rotate the traffic log beyond this size.")
    log_backups: int = Field(5, ge=0, description="Rotated traffic logs kept.")
    log_fsync: bool = Field(
        True, description=("fsync the traffic log after every record: survives a power loss, not only a kill -9 (about 1 ms a request).")
    )


class MonitorConfig(_Section):
    window: int = Field(200, ge=10, description="Requests per drift window.")
    alpha: float = Field(0.05, gt=0, lt=1, description="Family-wise false-alarm rate over all windows and tests (corrected).")
    permutations: int = Field(
        500,
        ge=50,
        description=(
            "Permutations for the MMD, domain-classifier and (without a test split) out-of-scope p-values (raised "
            "automatically so the smallest reachable p-value is below the corrected level)."
        ),
    )
    seed: int = Field(13, description="Seed for permutations and subsampling.")
    correction: Literal["bonferroni", "holm"] = Field(
        "bonferroni",
        description=(
            "Family-wise control over every test of every window: bonferroni (alpha / tests x windows) or holm "
            "(step-down, same guarantee, a little more power)."
        ),
    )
    oos_quantile: float = Field(
        0.99,
        gt=0.5,
        lt=1,
        description=(
            "A request is out of scope when its nearest training row is farther than this quantile of the training "
            "rows' own leave-one-out nearest-neighbour distances."
        ),
    )
    reference_max: int = Field(
        2000,
        ge=100,
        description=(
            "Training rows (random sample) compared with each window by MMD and the domain classifier; all rows "
            "count for the out-of-scope distance."
        ),
    )
    min_rows: int = Field(30, ge=5, description="Windows with fewer successful requests are skipped (too few to test).")
    examples: int = Field(10, ge=0, description="Out-of-scope and no-label examples kept per finding.")
    max_no_label_rate: float = Field(0.05, ge=0, le=1, description="Warn when more answers than this match no label (classification).")
    max_refusal_rate: float = Field(
        0.02, ge=0, le=1, description="Warn when more answers than this are refusals (the doctor's refusal patterns)."
    )
    max_empty_rate: float = Field(0.01, ge=0, le=1, description="Warn when more answers than this are empty.")


class PipelineConfig(_Section):
    stop_on: Literal["error", "warning", "never"] = Field(
        "error",
        description=(
            "`tunerail run` stops before training when doctor or leakage findings at this severity remain "
            "unresolved; never = continue (recorded, and the verdict still counts them)."
        ),
    )
    warning_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description=(
            "`tunerail run` stops before training when unresolved doctor warnings name more than this share of the "
            "training rows, until acknowledged: warnings on many rows usually mean a data problem, not noise."
        ),
    )
    acknowledge_warnings: bool = Field(
        False, description="Train even when doctor warnings name more than pipeline.warning_share of the rows (recorded in gate.json)."
    )


class TrackingConfig(_Section):
    mlflow_uri: str | None = Field(None, description="MLflow tracking URI; default: a local SQLite store under .tunerail/.")
    experiment: str = Field("tunerail", description="MLflow experiment name.")
    enabled: bool = Field(True, description="Log training runs to MLflow (params, per-step metrics, lineage, artifacts).")


class StoreConfig(_Section):
    path: str = Field(".tunerail/store", description="Content-addressed store for snapshots, splits, checkpoints and reports.")
