"""One sweep trial: a guarded training run that charges its time to the share and answers Optuna.

``SweepState`` is what every trial of one worker shares (the meter, the loaded base model, the
tokenized rows, where the last trial's training ended); ``Trial`` owns one trial's setting, its
hooks into the train recipe (``on_step``, ``on_eval``) and the reason it ended. The recipe
(``recipe.py``) only builds the state and hands ``Trial(state, optuna_trial).run`` to Optuna.
"""

from __future__ import annotations

import contextlib
import gc
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tunerail.errors import GuardrailError
from tunerail.sweep import share as share_mod
from tunerail.sweep.space import Dimension, apply, suggest


@dataclass
class Fidelity:
    """How much of a full trial one trial runs: a share of the training rows or of the steps.

    ``kind`` full is today's trial (all rows, every step); ``rows`` trains on a seeded subset of
    ``fraction`` of the training rows (the same subset for every trial of a rung); ``steps`` stops
    the trial after ``fraction`` of its steps, with a last evaluation.
    """

    kind: Literal["full", "rows", "steps"] = "full"
    fraction: float = 1.0
    rung: int = 0

    def describe(self, n_rows: int) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "fraction": round(self.fraction, 4), "rung": self.rung}
        if self.kind == "rows":
            out["rows"] = subset_size(n_rows, self.fraction)
        return out


MIN_VALIDATION = 16  # validation rows a short trial is scored on, at least (fewer make val loss too noisy to rank settings)


def subset_size(n_rows: int, fraction: float) -> int:
    return max(1, min(n_rows, math.ceil(n_rows * fraction)))


@dataclass
class SweepState:
    """What one worker's trials share: inputs, the meter, the reused base model and tokenized rows."""

    config: Any
    space: dict[str, Dimension]
    meter: share_mod.ShareMeter
    direction: str
    interval: int
    worker: str
    out: Path
    trial_store: Any
    parent: Any
    train_data: Any
    validation_data: Any
    n_rows: int = 0
    base: Any = None
    train_end: float | None = None
    published: float = 0.0
    caches: dict[Any, dict[Any, Any]] = field(default_factory=dict)

    def close_tail(self) -> None:
        """The end of the last trial's training to now: finish, release, Optuna's bookkeeping, outputs."""
        if self.train_end is not None:
            self.meter.costs.see("tail", time.perf_counter() - self.train_end)
            self.train_end = None

    def rows_for(self, fidelity: Fidelity) -> tuple[Any, Any, dict[Any, Any]]:
        """Training and validation rows of this fidelity, and their tokenized cache.

        ``rows`` below 1 trains on a seeded subset of ``fraction`` of the training rows and evaluates on a
        seeded subset of the validation rows (the same share, at least ``MIN_VALIDATION``): on the WNUT-17
        demo one evaluation of all 100 validation rows cost as much as a rung-0 trial's training.
        Every trial of a rung sees the same rows, so their values compare.
        """
        cache = self.caches.setdefault((fidelity.kind, fidelity.fraction) if fidelity.kind == "rows" else "all", {})
        if fidelity.kind != "rows" or fidelity.fraction >= 1.0:
            return self.train_data, self.validation_data, cache
        if "subset" not in cache:
            from tunerail.train.data import load_split

            train = load_split(self.train_data, self.config, "train")
            val = load_split(self.validation_data, self.config, "validation")
            n_val = max(min(len(val), MIN_VALIDATION), subset_size(len(val), fidelity.fraction))
            cache["subset"] = (
                _sample(train, subset_size(len(train), fidelity.fraction), self.config.train.seed),
                _sample(val, n_val, self.config.train.seed),
            )
        train_rows, val_rows = cache["subset"]
        return train_rows, val_rows, cache


def _sample(rows: list[Any], n: int, seed: int) -> list[Any]:
    import random

    return [rows[i] for i in sorted(random.Random(seed).sample(range(len(rows)), n))]


class Trial:
    """One Optuna trial as a real training run (every guardrail on), charged to the share.

    Each optimizer step and evaluation is measured into the meter's costs (``lap``); before each
    next unit the trial asks the meter whether that unit and a stop after it still fit, and is
    cut (``budget``) if not. The pruner reads validation loss in the study's direction.
    """

    def __init__(self, state: SweepState, trial: Any, fidelity: Fidelity | None = None) -> None:
        self.state = state
        self.trial = trial
        self.fidelity = fidelity or Fidelity()
        self.started = time.perf_counter()
        self.mark = self.started  # end of the last unit measured (step or evaluation)
        self.reason: str | None = None
        self.max_steps: int | None = None
        self.params: dict[str, Any] = {}
        self.cfg: Any = None
        self.batch = 1
        self.step_seconds: list[float] = []  # later steps (not the warm-up first one): the setting's cost per step

    @property
    def costs(self) -> share_mod.Costs:
        return self.state.meter.costs

    def lap(self, kind: str) -> None:
        now = time.perf_counter()
        self.costs.see(kind, now - self.mark)
        if kind == "step":
            self.step_seconds.append(now - self.mark)
        self.mark = now

    def cut(self, where: str) -> str:
        c = self.costs
        self.reason = (
            f"budget share: the next step and a stop after it would pass {self.state.config.budget.search_share:g} x "
            f"budget.max_hours (measured: step {c.step_cost():.2f} s, evaluation {c.eval or 0:.2f} s, "
            f"finish {c.stop_cost():.2f} s); cut {where}"
        )
        return "budget"

    def on_step(self, step: int, evaluating: bool) -> str | None:
        self.lap("first_step" if step == 1 else "step")
        meter, c = self.state.meter, self.costs
        if meter.mine - self.state.published >= share_mod.REFRESH:
            meter.publish()
            self.state.published = meter.mine
        if self.max_steps is not None and step >= self.max_steps:
            return "fidelity"  # the rung's share of steps is done: a last evaluation, then the trial's value
        need = (c.eval or 0.0) * evaluating + c.step_cost() + (c.eval or 0.0) + c.stop_cost()
        return None if meter.fits(need, fresh=False) else self.cut(f"after step {step}")

    def on_eval(self, row: dict[str, Any]) -> str | None:
        self.lap("eval")
        meter, c, sc = self.state.meter, self.costs, self.state.config.sweep
        self.trial.set_user_attr(share_mod.SECONDS_ATTR, round(time.perf_counter() - self.started, 3))
        meter.publish()
        self.state.published = meter.mine
        if row["step"] > 0 and self.fidelity.kind == "full":  # in a multi-fidelity sweep the rungs prune, not the pruner
            val = row.get("val_loss")
            if val is not None and math.isfinite(val):
                sign = 1.0 if self.state.direction == "minimize" else -1.0
                step = round(row["step"] * self.batch / self.state.interval)
                self.trial.report(sign * val, step)
                if self.trial.should_prune():
                    self.reason = f"pruned by the {sc.pruner} pruner at {step * self.state.interval} examples (val loss {val:.4f})"
                    return "pruned"
        if not meter.fits(c.step_cost() + (c.eval or 0.0) + c.stop_cost()):
            return self.cut(f"at step {row['step']}")
        return None

    def _configure(self, params: dict[str, Any] | None) -> None:
        state = self.state
        self.params = dict(params) if params is not None else suggest(self.trial, state.space)
        self.trial.set_user_attr("params_all", self.params)
        self.trial.set_user_attr("worker", state.worker)
        self.trial.set_user_attr("fidelity", self.fidelity.describe(state.n_rows))
        cfg = apply(state.config, self.params)
        self.batch = cfg.train.batch_size * cfg.train.gradient_accumulation
        cfg.train.eval_steps = max(1, state.interval // self.batch)
        cfg.train.probe_steps = 0  # the step time is measured by the trial itself
        cfg.budget.max_hours = max(state.meter.left(), 1e-3) / 3600  # a backstop: on_step stops the trial first
        cfg.budget.max_cost = None
        if self.fidelity.kind == "steps" and self.fidelity.fraction < 1.0:
            per_epoch = math.ceil(state.n_rows / cfg.train.batch_size) / cfg.train.gradient_accumulation
            self.max_steps = max(1, math.ceil(self.fidelity.fraction * max(1.0, cfg.train.epochs * per_epoch)))
            cfg.train.eval_steps = min(cfg.train.eval_steps, self.max_steps)
        self.cfg = cfg

    def run(self, params: dict[str, Any] | None = None) -> float:
        """Train this trial's setting; its value, or ``optuna.TrialPruned`` with the reason recorded."""
        import optuna

        from tunerail.train.recipe import TrainHooks, TrainRecipe

        state = self.state
        state.close_tail()
        self.started = self.mark = time.perf_counter()
        reused = state.base is not None
        self._configure(params)
        train_rows, val_rows, cache = state.rows_for(self.fidelity)
        state.published = state.meter.mine
        hooks = TrainHooks(on_eval=self.on_eval, on_step=self.on_step, base_model=state.base, cache=cache)
        trial_dir = state.out / "trials" / f"{self.trial.number:04d}"
        shutil.rmtree(trial_dir, ignore_errors=True)
        recipe = TrainRecipe(self.cfg, out_dir=trial_dir, resume=False, store=state.trial_store, progress=lambda e, i: None, hooks=hooks)
        ok, result = False, None
        try:
            recipe.setup(train_rows, val_rows)
            self.lap("setup" if reused else "first_setup")
            trained_from = time.perf_counter()
            recipe.train()
            state.train_end = time.perf_counter()
            self.trial.set_user_attr("train_seconds", round(state.train_end - trained_from, 3))  # the part that grows with fidelity
            result = recipe.finish()
            ok = True
        except GuardrailError as exc:
            self.reason = f"guardrail: {exc}"
        finally:
            if state.train_end is None:
                state.train_end = time.perf_counter()
            recipe.cleanup(failed=not ok)
            release(recipe, state)
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                self.trial.set_user_attr(share_mod.SECONDS_ATTR, round(time.perf_counter() - self.started, 3))
            shutil.rmtree(trial_dir / "checkpoints", ignore_errors=True)
        return self._value(result)

    def _value(self, result: Any) -> float:
        import optuna

        trial, config = self.trial, self.state.config
        if result is not None:
            tag_child(self.state.parent, result.run_id, trial.number)
            trial.set_user_attr("run_id", result.run_id)
            trial.set_user_attr("stopped_reason", result.stopped_reason)
            trial.set_user_attr("findings", sorted({f.code for f in result.findings if f.code}))
            trial.set_user_attr("best_step", result.best_step)
        if self.step_seconds:
            trial.set_user_attr("seconds_per_step", round(sum(self.step_seconds) / len(self.step_seconds), 4))
        if result is None or result.stopped_reason in ("divergence", "pruned"):
            if result is not None and result.stopped_reason == "divergence":
                finding = next((f for f in reversed(result.findings) if f.code == "TRN020"), None)
                self.reason = f"divergence: {finding.message if finding else 'loss diverged'}"
            trial.set_user_attr("reason", self.reason or "pruned")
            raise optuna.TrialPruned(self.reason or "pruned")
        if not any(row.get("step", 0) > 0 for row in result.history):
            # Cut before any trained step was evaluated: its value is the untrained model's, the same for every
            # setting, so it would win a sweep that measured nothing else (the E2E demo's sweep did that).
            self.reason = f"{self.reason or 'stopped'} before a trained step was evaluated: the setting was not measured"
            trial.set_user_attr("reason", self.reason)
            raise optuna.TrialPruned(self.reason)
        if result.stopped_reason == "budget" and self.reason is None:
            self.reason = "budget share: stopped inside a step by the trainer's budget guard"
        if result.stopped_reason == "fidelity":
            self.reason = f"rung {self.fidelity.rung}: {self.max_steps} steps ({self.fidelity.fraction:.3g} of the trial)"
        trial.set_user_attr("reason", self.reason or result.stopped_reason)
        if config.sweep.objective == "metric":
            return metric_value(self.cfg, self.state.validation_data, result.adapter_dir, config.sweep.metric_rows)
        if result.best_val_loss is None:
            raise optuna.TrialPruned("no validation loss")
        return float(result.best_val_loss)


def release(recipe: Any, state: SweepState) -> None:
    """Take the adapter off the base model (kept for the next trial) and free the rest."""
    model = getattr(recipe, "model", None)
    if model is not None and state.config.train.method != "full" and hasattr(model, "unload"):
        base = model.unload()
        for p in base.parameters():
            p.requires_grad_(False)
        state.base = base
    else:
        state.base = None  # full fine-tuning changed the weights themselves: reload next trial
    for attr in ("model", "loss_model", "optimizer", "scheduler", "trainable", "accelerator"):
        if hasattr(recipe, attr):
            setattr(recipe, attr, None)
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def tag_child(parent: Any, run_id: str | None, number: int) -> None:
    """Nest the trial's training run under the sweep's run (MLflow's parent tag)."""
    if parent is None or run_id is None or not hasattr(parent, "_client"):
        return
    parent._client.set_tag(run_id, "mlflow.parentRunId", parent.run_id)
    parent._client.set_tag(run_id, "tunerail.trial", str(number))


def metric_value(cfg: Any, validation_data: Any, adapter_dir: Path, rows: int) -> float:
    """The task metric of this trial's best checkpoint on (the first ``rows`` of) validation."""
    from tunerail.eval.recipe import compare_prompts

    one = cfg.model_copy(update={"prompts": cfg.prompts[:1]})
    found = compare_prompts(one, validation_data, adapter_dir=adapter_dir, limit=rows, cache_dir=None)
    return float(found["variants"][0]["value"])
