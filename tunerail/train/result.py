"""What crosses the train step's boundary: the caller's hooks in, the :class:`TrainResult` out (``train.json``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from tunerail.findings import Finding

Progress = Callable[[str, dict[str, Any]], None]


@dataclass
class TrainHooks:
    """Optional hooks for callers that run many trainings in one process (``tunerail sweep``).

    on_eval : called with each evaluation row (after the checkpoint); a returned string stops
        training there with that ``stopped_reason`` (pruned, budget share...).
    on_step : called after each optimizer step with the step and whether an evaluation follows
        it; a returned string stops training there, with a last evaluation and checkpoint (as the
        budget guard does), under that ``stopped_reason``.
    base_model : a loaded base model to wrap with a fresh LoRA instead of loading one; the
        caller removes the adapter afterwards (``peft`` ``unload()``).
    cache : a dict reused across trainings for the tokenizer and tokenized rows.
    """

    on_eval: Callable[[dict[str, Any]], str | None] | None = None
    on_step: Callable[[int, bool], str | None] | None = None
    base_model: Any = None
    cache: dict[Any, Any] | None = None

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        if self.cache is None:
            return compute()
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]


@dataclass
class TrainResult:
    """What a training run produced; also written to ``out_dir/train.json``."""

    adapter_dir: Path  # peft ``save_pretrained`` folder of the BEST checkpoint (full model for method=full)
    base_model: str
    method: str
    checkpoint_id: str | None  # store artifact id of the best checkpoint
    run_id: str | None  # MLflow run id
    tracking_uri: str | None
    history: list[dict[str, Any]]
    best_step: int
    best_val_loss: float | None
    stopped_reason: str  # completed | early_stopping | divergence | budget
    estimate: dict[str, Any] | None
    actual: dict[str, Any]
    findings: list[Finding]
    guards_disabled: list[str]
    parameters: dict[str, int]
    padding_waste: float
    data: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None
    weights_sha256: str | None = None  # this process's in-memory trainable weights at the end (DDP ranks must agree)
    best_val_metric: float | None = None  # train.select_by: metric: the task metric of the restored checkpoint
    # what chose the checkpoint (select_by), the step each criterion would have chosen, the metric's rows and cost
    selection: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["adapter_dir"] = str(self.adapter_dir)
        out["out_dir"] = str(self.out_dir) if self.out_dir else None
        out["findings"] = [f.to_dict() for f in self.findings]
        return out


def weights_digest(weights: dict[str, Any]) -> str:
    """SHA-256 of this rank's trainable parameters as they are in memory (not of a file rank 0 wrote)."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(weights):
        digest.update(name.encode())
        digest.update(weights[name].float().contiguous().numpy().tobytes())
    return digest.hexdigest()
