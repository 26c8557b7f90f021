"""Shared pieces of the schema: the section base (``extra="forbid"``), the task types and their metrics."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

TaskType = Literal["classification", "generation", "chat", "extraction"]

# What each task computes; criteria.metric is checked against it when the config loads, before
# any step runs (a typo must not surface only in eval, after training).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "macro_f1", "micro_f1", "accuracy_ranking", "perplexity"),
    "generation": ("rouge1", "rouge2", "rougeL", "bleu", "chrf", "exact_match", "normalized_match", "perplexity"),
    "extraction": ("field_f1", "field_precision", "field_recall", "exact_match", "json_valid", "perplexity"),
}
TASK_METRICS["chat"] = TASK_METRICS["generation"]
DEFAULT_METRIC = {"classification": "accuracy", "generation": "rougeL", "chat": "rougeL", "extraction": "field_f1"}
# Metrics reported on sacrebleu's 0-100 scale (papers quote BLEU 24.3, not 0.243); every other metric is 0-1.
# criteria.margin is a share of the metric's range, so a 0-100 metric's CI half-width is compared with 100 x margin.
PERCENT_METRICS = frozenset({"bleu", "chrf"})


def metric_range(metric: str | None) -> float:
    """The width of ``metric``'s scale: 100 for the sacrebleu metrics, else 1 (``criteria.margin`` is a share of it)."""
    return 100.0 if metric in PERCENT_METRICS else 1.0


class _Section(BaseModel):
    # allow_inf_nan=False: `threshold: .nan` would make every comparison False and pass silently.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def did_you_mean(name: str, known: Any) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
