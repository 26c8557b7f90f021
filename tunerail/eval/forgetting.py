"""Forgetting: did fine-tuning cost general capability? Same suite on the base and tuned model.

Two tasks on ``resources/general_eval.jsonl`` (40 Self-Instruct rows, Apache-2.0; built by
``scripts/build_general_eval.py``):

- **answer NLL**: mean per-token negative log-likelihood of the reference output given the
  instruction (lower is better). A fine-tune that overwrote the model's instruction following
  raises it. Relative change = (tuned - base) / base.
- **multiple choice**: 4 options per row (the right output and 3 outputs of unrelated tasks),
  picked by length-normalised log-likelihood; accuracy. Relative change = (base - tuned) / base.

Both use the neutral prompt (no task system message), because forgetting is about what the
model does OUTSIDE the fine-tuned task. Both tasks come from ONE shared-prefix pass per model
(40 prompts, 160 candidate answers of <= 120 characters); time in bench/eval_speed.py.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from tunerail.eval.generate import LoadedModel, Progress, score_choices
from tunerail.stats import bootstrap_ci


def load_suite() -> list[dict[str, Any]]:
    text = resources.files("tunerail.resources").joinpath("general_eval.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass
class SuiteScores:
    """One model's scores on the suite (per-row arrays kept for paired comparison)."""

    answer_nll: np.ndarray  # mean NLL per token, per row
    mc_correct: np.ndarray  # 0/1 per row
    seconds: float

    def summary(self, resamples: int = 1000, seed: int = 13) -> dict[str, Any]:
        return {
            "answer_nll": bootstrap_ci(self.answer_nll, resamples=resamples, seed=seed).to_dict(),
            "mc_accuracy": bootstrap_ci(self.mc_correct, resamples=resamples, seed=seed).to_dict(),
            "seconds": round(self.seconds, 2),
        }


def run_suite(
    lm: LoadedModel, rows: list[dict[str, Any]] | None = None, *, batch_size: int = 16, progress: Progress | None = None
) -> SuiteScores:
    """Score one model on the suite."""
    rows = rows if rows is not None else load_suite()
    start = time.perf_counter()
    prompts = [_render(lm, r["prompt"]) for r in rows]
    # One shared-prefix pass: the reference output is one of the choices, so its score IS the
    # answer log-likelihood (no second pass over the same prompt).
    mlp, mn = score_choices(lm, prompts, [r["choices"] for r in rows], batch_size=batch_size, progress=progress, stage="forgetting")
    picked = np.argmax(mlp / mn, axis=1)
    correct = np.array([float(p == r["answer"]) for p, r in zip(picked, rows)])
    answer = np.array([r["answer"] for r in rows])
    nll = -mlp[np.arange(len(rows)), answer] / mn[np.arange(len(rows)), answer]
    return SuiteScores(nll, correct, time.perf_counter() - start)


def _render(lm: LoadedModel, prompt: str) -> str:
    from tunerail.prompting import prompt_for

    return prompt_for(lm.tokenizer, prompt)


@dataclass
class ForgettingResult:
    base: dict[str, Any]
    tuned: dict[str, Any]
    relative_change: dict[str, float]  # positive = worse after fine-tuning
    worst: float
    budget: float
    over_budget: bool
    rows: int
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def compare(base: SuiteScores, tuned: SuiteScores, *, budget: float, resamples: int = 1000, seed: int = 13) -> ForgettingResult:
    """Relative degradation per task; the worst one is compared with ``criteria.max_forgetting``."""
    b_nll, t_nll = float(base.answer_nll.mean()), float(tuned.answer_nll.mean())
    b_mc, t_mc = float(base.mc_correct.mean()), float(tuned.mc_correct.mean())
    change = {
        "answer_nll": (t_nll - b_nll) / b_nll if b_nll else 0.0,
        "mc_accuracy": (b_mc - t_mc) / b_mc if b_mc else 0.0,
    }
    worst = max(change.values())
    return ForgettingResult(
        base.summary(resamples, seed),
        tuned.summary(resamples, seed),
        {k: round(v, 4) for k, v in change.items()},
        round(worst, 4),
        budget,
        worst > budget,
        int(base.answer_nll.size),
    )
