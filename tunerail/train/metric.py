"""Best checkpoint and early stopping on the task metric (``train.select_by: metric``).

Validation loss and the task metric can disagree: loss keeps falling while field F1 or ROUGE-L
has peaked, or the reverse (bench/select_by.py measures it on the WNUT-17 demo). With
``select_by: metric`` every evaluation also answers a fixed, seeded subset of the validation rows
(``train.metric_rows``) and scores the answers with the criteria metric; the best-metric
checkpoint is restored and early stopping follows it (higher is better).

The answers come from the eval step's own code, imported, not copied: the prompt rendering
(``tunerail.prompting``), the batched greedy and label-constrained decoding and label ranking
(``tunerail.eval.generate``), the answer length (``tunerail.eval.inference.max_new_tokens``) and
the task scorer (``tunerail.tasks``), so the number equals ``tunerail eval``'s on the same rows.
The model is the one being trained, LoRA unmerged (eval merges it; same function, float-level
differences only).

Cost: one generation pass over ``metric_rows`` rows per evaluation, charged to the training
clock and the budget; the step-0 evaluation times it before the first step and TRN012 says when
the run cannot afford it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from tunerail import tasks as T
from tunerail.config import DEFAULT_METRIC
from tunerail.data.records import Record
from tunerail.eval import generate as G
from tunerail.eval.inference import max_new_tokens, span_sources
from tunerail.findings import Finding, Severity
from tunerail.prompting import pick_template, prompt_for
from tunerail.scoring import check_metric

SELECT_BY = ("loss", "metric")


def metric_name(config: Any) -> str:
    """What ``select_by: metric`` ranks by: ``train.metric``, else the criteria metric (the config checked both)."""
    return config.train.metric or config.criteria.metric or DEFAULT_METRIC[config.task]


def metric_subset(n: int, k: int, seed: int) -> list[int]:
    """A fixed subset of ``k`` of ``n`` validation row indices, drawn with ``seed``, in file order (all when ``k >= n``)."""
    if k >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), k))


@dataclass
class MetricProbe:
    """Answers the chosen validation rows with the model being trained and scores them like ``tunerail eval``.

    Build it with :meth:`from_config`; call it with the (peft) model at each evaluation.
    """

    task: str
    metric: str
    rows: list[int]  # indices into the validation split (recorded in train.json)
    prompts: list[str]
    references: list[str]
    labels: list[str]
    tokenizer: Any
    max_new: int
    batch_size: int
    decoding: str  # "free", "constrained" (classification, eval.decoding), "span_copy" (span extraction) or "ranking"
    sources: list[str] | None = None  # what span copy copies from: the rows' prompts
    seconds: list[float] = field(default_factory=list)  # generation + scoring time of each call

    @classmethod
    def from_config(cls, config: Any, validation: Sequence[Record], train: Sequence[Record], tokenizer: Any) -> "MetricProbe":
        """Rows, prompts and decoding as the eval step would choose them (labels from train + validation)."""
        task, metric, ev = config.task, metric_name(config), config.eval
        check_metric(task, metric, label_ranking=ev.label_ranking or metric == "accuracy_ranking")
        T.check_labels(task, validation)
        rows = metric_subset(len(validation), config.train.metric_rows, config.train.seed)
        labels = sorted({r.label for r in [*train, *validation] if r.label is not None}) if task == "classification" else []
        template = pick_template(config)
        chosen = [validation[i] for i in rows]
        decoding = "free"
        if labels:
            decoding = "ranking" if metric == "accuracy_ranking" else "free" if ev.decoding == "free" else "constrained"
        # span extraction is judged with span copy unless eval.decoding is free; the shape is read from the training rows, as eval reads it
        spans = ev.decoding != "free" and span_sources(task, None, list(train) or chosen) is not None
        sources = [r.prompt for r in chosen] if spans else None
        if sources is not None:
            decoding = "span_copy"
        return cls(
            task=task,
            metric=metric,
            rows=rows,
            prompts=[prompt_for(tokenizer, r, template) for r in chosen],
            references=[r.completion for r in chosen],
            labels=labels,
            tokenizer=tokenizer,
            max_new=max_new_tokens(config, task, tokenizer, labels),
            batch_size=ev.batch_size,
            decoding=decoding,
            sources=sources,
        )

    def answers(self, model: Any) -> dict[str, Any]:
        """The output bundle ``tasks.score_output`` reads (``text``, and ``ranked`` for label ranking)."""
        lm = G.LoadedModel(model, self.tokenizer, "training", "")
        side = self.tokenizer.padding_side  # generation pads left; the training collate pads itself
        try:
            if self.decoding == "ranking":
                ranked = G.rank_labels(lm, self.prompts, self.labels, batch_size=self.batch_size)
                return {"text": ranked, "ranked": ranked}
            if self.decoding == "constrained":
                return {"text": G.generate_constrained(lm, self.prompts, self.labels, batch_size=self.batch_size)}
            if self.decoding == "span_copy" and self.sources is not None:
                texts = G.generate_span_copy(lm, self.prompts, self.sources, max_new_tokens=self.max_new, batch_size=self.batch_size)
                return {"text": texts}
            return {"text": G.generate(lm, self.prompts, max_new_tokens=self.max_new, batch_size=self.batch_size)}
        finally:
            self.tokenizer.padding_side = side

    def __call__(self, model: Any) -> float:
        """The metric of ``model`` on the rows (eval mode for the call; the caller's mode is restored)."""
        start = time.perf_counter()
        was_training = model.training
        model.eval()
        try:
            out = self.answers(model)
        finally:
            model.train(was_training)
        scores = T.score_output(self.task, self.references, out, self.labels)
        value = float(scores.statistic(self.metric)(np.arange(len(self.references))))
        self.seconds.append(time.perf_counter() - start)
        return value


def chosen_steps(history: Sequence[dict[str, Any]]) -> dict[str, int | None]:
    """The step each criterion would restore: lowest ``val_loss``, highest ``val_metric`` (earliest on ties)."""
    out: dict[str, int | None] = {"loss": None, "metric": None}
    losses = [h for h in history if h.get("val_loss") is not None]
    if losses:
        out["loss"] = min(losses, key=lambda h: (h["val_loss"], h["step"]))["step"]
    metrics = [h for h in history if h.get("val_metric") is not None]
    if metrics:
        out["metric"] = min(metrics, key=lambda h: (-h["val_metric"], h["step"]))["step"]
    return out


def selection_record(probe: MetricProbe | None, select_by: str, history: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``train.json`` ``selection``: what chose the checkpoint, what each criterion would have chosen, the metric's rows and cost."""
    steps = chosen_steps(history)
    at = {h["step"]: h for h in history}
    record: dict[str, Any] = {
        "select_by": select_by,
        "chosen_by": steps,
        "val_metric_at": {k: at[s].get("val_metric") for k, s in steps.items() if s is not None},
        "val_loss_at": {k: at[s].get("val_loss") for k, s in steps.items() if s is not None},
    }
    if probe is not None:
        record.update(
            metric=probe.metric,
            decoding=probe.decoding,
            rows=probe.rows,
            seconds_per_eval=round(float(np.mean(probe.seconds)), 3) if probe.seconds else None,
        )
    return record


def check_metric_cost(estimate: Any, budget: Any, seconds_per_eval: float, rows: int) -> list[Finding]:
    """TRN012: with the timed generation of ``select_by: metric`` the run no longer fits the budget.

    ``estimate`` already holds the timed evaluations (the step-0 one, generation included); this
    names the generation's share and the ``metric_rows`` that would fit, instead of letting the
    budget guard cut the run short in silence.
    """
    caps = []
    if budget.max_hours is not None:
        caps.append(budget.max_hours * 3600)
    if budget.max_cost is not None and budget.price_per_hour > 0:
        caps.append(budget.max_cost / budget.price_per_hour * 3600)
    evals = estimate.evals or 0
    generation = evals * seconds_per_eval
    if not caps or not generation or estimate.seconds <= min(caps):
        return []
    cap = min(caps)
    without = estimate.seconds - generation
    fit = int(rows * (cap - without) / generation) if cap > without else 0
    fix = f"lower train.metric_rows to {fit} or fewer, " if fit >= 1 else ""
    return [
        Finding(
            "budget.select_metric",
            Severity.WARNING,
            f"train.select_by: metric answers {rows} validation rows at each of {evals} evaluations ({seconds_per_eval:.1f} s each, "
            f"{generation / 60:.1f} min, {100 * generation / estimate.seconds:.0f} % of the run): the run is estimated at "
            f"{estimate.seconds / 60:.1f} min, over the budget's {cap / 60:.1f} min, so the budget guard would stop it early",
            f"{fix}raise train.eval_steps (fewer evaluations), raise the budget, or use train.select_by: loss",
            code="TRN012",
            details={
                "rows": rows,
                "evals": evals,
                "seconds_per_eval": seconds_per_eval,
                "estimate_seconds": estimate.seconds,
                "cap_seconds": cap,
            },
        )
    ]
