"""``TunerailConfig``: one section per workflow step, and the cross-section checks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from tunerail.config.base import DEFAULT_METRIC, TASK_METRICS, TaskType, _Section, did_you_mean
from tunerail.config.criteria import BudgetConfig, CriteriaConfig
from tunerail.config.data import DataConfig, ModelConfig, ProjectConfig
from tunerail.config.doctor import DoctorConfig, SplitConfig
from tunerail.config.eval import EvalConfig, PromptTemplate, ReviewConfig
from tunerail.config.ops import MonitorConfig, PipelineConfig, ServeConfig, StoreConfig, TrackingConfig
from tunerail.config.train import SelectConfig, SweepConfig, TrainConfig


class TunerailConfig(_Section):
    """A tunerail project: what to train, on what, and what counts as success."""

    project: ProjectConfig = Field(
        default_factory=ProjectConfig, description=("Project name and intended use; a plain string is the name.")
    )
    task: TaskType = Field("generation", description="classification, generation, chat or extraction.")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    prompts: list[PromptTemplate] = Field(
        default_factory=lambda: [PromptTemplate()], min_length=1, description="Prompt template variants; the first is the default."
    )
    criteria: CriteriaConfig = Field(
        default_factory=CriteriaConfig,
        description=(
            "At least one of threshold / min_improvement is required (fixed before training, hashed with the test set). "
            "Without one, READY would certify nothing."
        ),
    )
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    doctor: DoctorConfig = Field(default_factory=DoctorConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)

    # Not part of the schema: where the config came from, to resolve relative paths.
    source: str | None = Field(None, exclude=True, description="(internal) path of the YAML file.")

    @model_validator(mode="before")
    @classmethod
    def _project_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("project"), str):
            data = {**data, "project": {"name": data["project"]}}
        return data

    @model_validator(mode="after")
    def _metric_for_task(self) -> "TunerailConfig":
        allowed = TASK_METRICS[self.task]
        if self.criteria.metric is None:
            self.criteria.metric = DEFAULT_METRIC[self.task]
        elif self.criteria.metric not in allowed:
            raise ValueError(
                f"criteria.metric {self.criteria.metric!r} is not computed for task {self.task!r}; use one of: {', '.join(allowed)}"
            )
        return self

    @model_validator(mode="after")
    def _select_metric_for_task(self) -> "TunerailConfig":
        """``train.metric`` (what ``train.select_by: metric`` ranks checkpoints by) must be one the task computes from answers."""
        allowed = [m for m in TASK_METRICS[self.task] if m != "perplexity"]
        wanted = self.train.metric
        if wanted is not None and wanted not in allowed:
            why = " (perplexity is validation loss: use train.select_by: loss)" if wanted == "perplexity" else did_you_mean(wanted, allowed)
            raise ValueError(
                f"train.metric {wanted!r} is not computed from answers for task {self.task!r}{why}; use one of: {', '.join(allowed)}"
            )
        if wanted is None and self.train.select_by == "metric" and self.criteria.metric not in allowed:
            raise ValueError(
                f"train.select_by metric ranks checkpoints by criteria.metric {self.criteria.metric!r}, which is validation loss by "
                f"another name; set train.metric to one of: {', '.join(allowed)}, or use train.select_by: loss"
            )
        return self

    @field_validator("prompts")
    @classmethod
    def _unique_versions(cls, prompts: list[PromptTemplate]) -> list[PromptTemplate]:
        versions = [p.version for p in prompts]
        twice = sorted({v for v in versions if versions.count(v) > 1})
        if twice:
            raise ValueError(
                f"prompt version(s) {', '.join(map(repr, twice))} used twice: every run records the "
                "version it used, so each variant needs its own"
            )
        return prompts

    @model_validator(mode="after")
    def _prompt_version_exists(self) -> "TunerailConfig":
        wanted = self.eval.prompt_version
        if wanted is not None and wanted not in {p.version for p in self.prompts}:
            raise ValueError(f"eval.prompt_version {wanted!r} names no prompt; versions: {', '.join(p.version for p in self.prompts)}")
        return self

    def resolve(self, path: str | None) -> Path | None:
        """A path from the config, relative to the config file's folder."""
        if path is None:
            return None
        p = Path(path)
        if p.is_absolute() or self.source is None:
            return p
        return Path(self.source).parent / p

    def criteria_hash(self) -> str:
        payload = json.dumps(self.criteria.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def fingerprint(self) -> str:
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()
