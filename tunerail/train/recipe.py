"""The training recipe: LoRA fine-tuning of a causal LM with every guardrail on by default.

Run it with ``tunerail train --train train.jsonl --validation validation.jsonl`` or
``tunerail.train(config, train_data=..., validation_data=..., out_dir=...)``; unchanged under
``accelerate launch`` / ``torchrun`` (DDP, one process per device or CPU socket).

What each feature costs (2-core CPU, SmolLM2-135M, see ``bench/train.py``):

- loss on the answer span only, LM head applied to answer positions only: fewer logits
  (batch x answer tokens instead of batch x length x vocab), faster and 1-2 GB less RAM;
- ``train.bf16: auto``: bf16 base weights under LoRA on a bf16 GPU; on a CPU with native bf16,
  fp32 weights under bf16 autocast (2.9x the fp32 tokens/s on an idle 2-core EPYC), else fp32;
- batches padded to their own longest row and grouped by length (padding waste reported);
- the time/cost probe: ``train.probe_steps`` forward+backward passes before training;
- an evaluation every ``eval_steps`` (default: ~10 per run) and a resume checkpoint with it;
- ``train.select_by: metric``: each evaluation also generates answers for ``train.metric_rows``
  validation rows and scores them with the task metric (``metric.py``; cost in bench/select_by.py).

Guardrails (each switch-off recorded): validation split required, early stopping with the
best checkpoint restored (by validation loss, or the task metric: ``train.select_by``), hyperparameter lint before the first step, divergence guard,
overfitting monitor, budget cap. See ``guards.py``, ``lint.py`` and ``budget.py``.
"""

# size: file: the recipe reads setup -> train -> finish in one file, as torchtune's do (loss, checkpoint, probe live apart)
from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from tunerail.config.train import PREFERENCE_METHODS
from tunerail.errors import GuardrailError, Problem, TunerailError
from tunerail.findings import Finding, sort_findings
from tunerail.io import atomic_folder, write_atomic
from tunerail.prompting import pick_template
from tunerail.train import budget as budget_mod
from tunerail.train import distributed
from tunerail.train.checkpoint import (
    TrainState,
    capture_rng,
    earlier_run,
    read_state,
    read_weights,
    restore_rng,
    resume_fingerprint,
    write_state,
)
from tunerail.train.data import (
    Example,
    collate,
    length_grouped_batches,
    load_split,
    padding_waste,
    replay_pool,
    replay_sample,
    tokenize_records,
)
from tunerail.train.guards import DivergenceGuard, EarlyStopping, check_overfitting, disabled_guards
from tunerail.train.lint import LR_DEFAULT, LintInputs, lint_hyperparameters
from tunerail.train.lint import gate as lint_gate
from tunerail.train.loss import loss_model
from tunerail.train.metric import MetricProbe, check_metric_cost, selection_record
from tunerail.train.result import Progress, TrainHooks, TrainResult, weights_digest


def train(
    config: Any,
    *,
    train_data: str | Path | Sequence[Any],
    validation_data: str | Path | Sequence[Any] | None,
    out_dir: str | Path,
    resume: bool = False,
    store: Any = None,
    progress: Progress | None = None,
    hooks: TrainHooks | None = None,
) -> TrainResult:
    """Fine-tune ``config.model.base`` on ``train_data``, guarded; returns the best checkpoint.

    Parameters
    ----------
    config : TunerailConfig
    train_data, validation_data : path or list of records/dicts
        Split files as written by ``tunerail split`` (original columns + ``_tunerail``).
    out_dir : path
        Run folder: ``checkpoints/`` (resume state), ``adapter/`` (best), ``train.json``.
    resume : bool
        Continue from the last checkpoint in ``out_dir`` (after a crash or ``kill -9``).
    store : Store, optional
        Where the best checkpoint is stored with lineage; default ``config.store.path``.
    progress : callable(event, info), optional
        Called with ``setup``, ``estimate``, ``step``, ``eval`` and ``done`` events.
    hooks : TrainHooks, optional
        Per-evaluation callback, preloaded base model and tokenized-data cache (sweeps).
    """
    if config.train.method in PREFERENCE_METHODS:  # preference pairs, not SFT rows: tunerail/train/preference.py
        raise TunerailError(
            Problem(
                f"train.method {config.train.method} tunes on preference pairs",
                field="train.method",
                fix="use `tunerail train --pairs` (train_preference)",
            )
        )
    recipe = TrainRecipe(config, out_dir=Path(out_dir), resume=resume, store=store, progress=progress, hooks=hooks)
    recipe.setup(train_data, validation_data)
    ok = False
    try:
        recipe.train()
        result = recipe.finish()
        ok = True
        return result
    finally:
        recipe.cleanup(failed=not ok)


class TrainRecipe:
    """setup -> train -> finish -> cleanup, torchtune style: one component per ``_setup_*``."""

    def __init__(self, config: Any, *, out_dir: Path, resume: bool, store: Any, progress: Progress | None, hooks: TrainHooks | None = None):
        self.config = config
        self.tc = config.train
        self.out_dir = out_dir
        self.resume = resume
        self.progress = progress
        self.disabled = disabled_guards(self.tc)
        self.method = self.tc.method
        self.lr = self.tc.learning_rate or LR_DEFAULT[self.method]
        if store is None:
            from tunerail.store import Store

            store = Store(config.resolve(config.store.path))
        self.store = store
        self.findings: list[Finding] = []
        self.history: list[dict[str, Any]] = []
        self.step = 0
        self.elapsed = 0.0  # training wall time, summed over resumed sessions (time lost to a kill included)
        self.lost_seconds = 0.0  # of which: trained after the last checkpoint by a session that was killed
        self.stopped_reason = "completed"
        self.estimate: budget_mod.Estimate | None = None
        self.probe_seconds: float | None = None  # the pre-run probe's estimate, kept beside the measured one
        self.estimate_basis = "probe"
        self._window: tuple[float, int, int] | None = None
        self._eval_times: list[float] = []  # in-loop evaluations (with checkpoint) since the estimate window opened
        self.run_id: str | None = None
        self.best_dir: str | None = None
        self.tracker: Any = None
        self.hooks = hooks or TrainHooks()
        self._hook_stop: str | None = None
        self.probe: MetricProbe | None = None  # train.select_by: metric

    # -- setup ---------------------------------------------------------------------------------
    def setup(self, train_data: Any, validation_data: Any) -> None:
        import torch
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        # cpu=True on CPU-only machines: accelerate then detects torchrun/`accelerate launch` ranks (gloo).
        cuda = torch.cuda.is_available()
        plugins = distributed.accelerator_kwargs(
            self.tc.distributed, cuda=cuda, batch_size=self.tc.batch_size, gradient_accumulation=self.tc.gradient_accumulation
        )
        self.accelerator = Accelerator(cpu=not cuda, **plugins)
        self.sharded = distributed.is_sharded_run(self.accelerator)  # FSDP: weights are gathered to be read
        self.main = self.accelerator.is_main_process
        self.world = self.accelerator.num_processes
        self.rank = self.accelerator.process_index
        set_seed(self.tc.seed)
        self.ckpt_root = self.out_dir / "checkpoints"
        state = self._setup_resume()
        self._setup_data(train_data, validation_data)
        self._setup_lint()
        self._setup_model()
        self._setup_optimizer()
        if state is not None:
            self._load_state(state)
        elif self.tc.probe_steps > 0:
            self._setup_estimate(None)  # before step 1 (select's probe reads it after setup)
        self._setup_tracking()

    def _emit(self, event: str, **info: Any) -> None:
        if not self.main:
            return
        if self.progress is not None:
            self.progress(event, info)
        elif "message" in info:
            print(info["message"], file=sys.stderr)

    def _setup_resume(self) -> TrainState | None:
        latest = self.ckpt_root / "latest.json"
        if not self.resume:
            if latest.exists():
                raise earlier_run(self.out_dir)
            return None
        if not latest.exists():
            self._emit("setup", message=f"--resume: no checkpoint in {self.ckpt_root}, starting from scratch")
            return None
        state, folder = read_state(self.ckpt_root)
        self.state_folder = folder
        if state.fingerprint and state.fingerprint != resume_fingerprint(self.config):
            self._emit(
                "setup",
                message="warning: the config changed since the checkpoint; the checkpoint's data "
                "order and step count win, the new settings apply from here",
            )
        self._emit("setup", message=f"resuming from step {state.step} ({folder.name})")
        return state

    def _setup_data(self, train_data: Any, validation_data: Any) -> None:
        from tunerail.models import load_tokenizer

        memo = self.hooks.memo
        train_records = memo(("records", "train"), lambda: load_split(train_data, self.config, "train"))
        if validation_data is None:
            if "validation" not in self.disabled:
                raise GuardrailError(
                    Problem(
                        "a validation split is required (early stopping, best checkpoint, overfitting monitor)",
                        fix="pass --validation (written by `tunerail split`), or set train.guards.validation: false",
                    )
                )
            val_records = []
        else:
            val_records = memo(("records", "validation"), lambda: load_split(validation_data, self.config, "validation"))
        self.n_task_rows = len(train_records)
        self.tokenizer = memo(("tokenizer", self.config.model.base), lambda: load_tokenizer(self.config.model.base))
        self._setup_metric(train_records, val_records)
        template = pick_template(self.config)
        max_len = self.config.model.max_seq_length
        pool = replay_pool(self.tokenizer, max_len) if self.tc.replay_ratio > 0 else None
        replay = replay_sample(len(train_records), self.tc.replay_ratio, self.tc.seed, pool=pool)
        key = (template.model_dump_json(), max_len, self.tc.loss_on)
        self.train_examples = list(
            memo(
                ("train",) + key,
                lambda: tokenize_records(train_records, self.tokenizer, template, max_length=max_len, loss_on=self.tc.loss_on),
            )
        )
        self.n_task_examples = len(self.train_examples)  # replay examples follow: indices >= this
        if replay:
            from tunerail.config import PromptTemplate

            self.train_examples += tokenize_records(replay, self.tokenizer, PromptTemplate(), max_length=max_len, loss_on=self.tc.loss_on)
        self.val_examples = memo(
            ("validation",) + key,
            lambda: tokenize_records(val_records, self.tokenizer, template, max_length=max_len, loss_on=self.tc.loss_on),
        )
        self.lengths = [e.length for e in self.train_examples]
        self.batches_per_epoch = math.ceil(len(self.train_examples) / self.tc.batch_size)
        self.micro_per_step = self.tc.gradient_accumulation * self.world
        self.total_steps = max(1, math.ceil(self.tc.epochs * self.batches_per_epoch / self.micro_per_step))
        # Estimate window: steps 2..this (a tenth of the run, at least 4 steps): long enough to average out noise.
        self.warmup_steps = min(self.total_steps, max(1 + max(3, self.tc.probe_steps), math.ceil(self.total_steps / 10)))
        self.eval_steps = self.tc.eval_steps or default_eval_steps(self.total_steps, self.batches_per_epoch / self.micro_per_step)
        self._epoch_cache: dict[int, list[list[int]]] = {}
        epoch0 = self._epoch_batches(0)
        self.padding_waste = padding_waste(epoch0, self.lengths)
        self.data_info = {
            "train_rows": len(train_records),
            "replay_rows": len(replay),
            "validation_rows": len(val_records),
            "train_tokens_per_epoch": sum(self.lengths),
            "truncated_rows": sum(e.truncated for e in self.train_examples[: self.n_task_examples]),
            "truncated_replay_rows": sum(e.truncated for e in self.train_examples[self.n_task_examples :]),
            "padding_waste": round(self.padding_waste, 4),
            "lineage": self._lineage(train_data, validation_data),
        }
        self._emit(
            "setup",
            message=(
                f"data: {len(train_records)} train rows (+{len(replay)} replay), {len(val_records)} "
                f"validation rows; {self.total_steps} steps, eval every {self.eval_steps}; "
                f"padding waste {100 * self.padding_waste:.1f} %"
            ),
        )

    def _setup_metric(self, train_records: Sequence[Any], val_records: Sequence[Any]) -> None:
        """``train.select_by: metric``: the validation rows to answer at each evaluation, decoded and scored as eval does."""
        if self.tc.select_by != "metric":
            return
        if not val_records:
            self._emit("setup", message="warning: train.select_by: metric is ignored without validation rows (the last checkpoint is kept)")
            return
        if self.sharded:
            raise TunerailError(
                Problem(
                    "train.select_by: metric generates with the whole model, which a sharded run does not hold",
                    field="train.select_by",
                    fix="use train.select_by: loss, or train.distributed: ddp",
                )
            )
        self.probe = MetricProbe.from_config(self.config, val_records, train_records, self.tokenizer)

    def _lineage(self, *sources: Any) -> dict[str, Any]:
        """Store artifacts (split snapshots) holding the exact input files: the checkpoint's parents."""
        from tunerail.io import hash_file

        out: dict[str, Any] = {"files": {}, "parents": []}
        shas = {}
        for src in sources:
            if isinstance(src, (str, Path)) and Path(src).is_file():
                shas[str(src)] = hash_file(src)
        out["files"] = shas
        wanted = set(shas.values())
        if wanted:
            for artifact in self.store.list():
                if wanted & {f["sha256"] for f in artifact.files.values()}:
                    out["parents"].append(artifact.id)
        return out

    def _setup_lint(self) -> None:
        task = self.train_examples[: self.n_task_examples]
        truncated = [e.ref for e in task if e.truncated and e.ref is not None]
        inputs = LintInputs(
            method=self.method,
            learning_rate=self.lr,
            epochs=self.tc.epochs,
            batch_size=self.tc.batch_size * self.micro_per_step,
            n_train=self.n_task_rows,
            n_validation=len(self.val_examples),
            max_seq_length=self.config.model.max_seq_length,
            lora_r=self.tc.lora.r,
            lora_alpha=self.tc.lora.alpha,
            early_stopping="early_stopping" not in self.disabled,
            truncated=truncated,
            replay_rows=len(self.train_examples) - self.n_task_examples,
            replay_truncated=self.data_info["truncated_replay_rows"],
            disabled_guards=self.disabled,
        )
        self.findings.extend(lint_gate(lint_hyperparameters(inputs), self.disabled, self._show_lint))

    def _show_lint(self, f: Finding) -> None:
        self._emit("lint", finding=f, message=f"{f.severity.value} {f.code} {f.message}\n    fix: {f.fix}")

    def _setup_model(self) -> None:
        import torch

        from tunerail.train.lora import count_parameters, load_base_model, prepare_model, use_bf16

        self.bf16 = use_bf16(self.tc.bf16)
        on_cpu = self.accelerator.device.type == "cpu"
        autocast = self.bf16 and (self.tc.bf16 == "autocast" or self.method == "full" or (on_cpu and self.tc.bf16 == "auto"))
        base = self.hooks.base_model
        if base is None:
            base = load_base_model(self.config.model.base, method=self.method, bf16=self.bf16 and not autocast)
        base.config.use_cache = False
        self.model = prepare_model(base, method=self.method, lora=self.tc.lora, seed=self.tc.seed)
        self.model.to(self.accelerator.device)
        self.params = count_parameters(self.model)
        precision = "bf16 autocast" if autocast else "bf16 base weights" if self.bf16 and self.method == "lora" else "fp32"
        self._emit("setup", message=f"{self.method} on {self.config.model.base}: {self.params} ({precision})")
        # FSDP: one forward per unit per step (the shared prefix would run each layer twice before backward).
        shared = self.tc.shared_prefix and not self.sharded
        wrapped = loss_model(self.model, answer_only_head=True, autocast_bf16=autocast, shared_prefix=shared)
        distributed.set_wrap_policy(self.accelerator, self.model)
        # DeepSpeed prepares the model with its optimizer (_setup_optimizer).
        self.loss_model = wrapped if distributed.is_deepspeed_run(self.accelerator) else self.accelerator.prepare(wrapped)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.trainable_names = [n for n, p in self.model.named_parameters() if p.requires_grad]
        torch.manual_seed(self.tc.seed)

    def _setup_optimizer(self) -> None:
        import torch
        from transformers import get_cosine_schedule_with_warmup

        self.optimizer = torch.optim.AdamW(self.trainable, lr=self.lr, weight_decay=self.tc.weight_decay)
        if distributed.is_deepspeed_run(self.accelerator):
            self.loss_model, self.optimizer = self.accelerator.prepare(self.loss_model, self.optimizer)
        warmup = round(self.tc.warmup_ratio * self.total_steps)
        self.scheduler = get_cosine_schedule_with_warmup(self.optimizer, warmup, self.total_steps)
        self.early = EarlyStopping(self.tc.patience, higher_is_better=self.probe is not None)
        vocab = getattr(getattr(self.model, "config", None), "vocab_size", None)  # ln(V): the loss of a uniform guess
        self.divergence = DivergenceGuard(uniform_loss=math.log(vocab) if vocab else None)

    def _setup_estimate(self, eval_seconds: float | None) -> None:
        """Before step 1: time warm-up passes over batches of several sizes (no update, RNG restored).

        The median per-token time, a timed optimizer step on a throwaway copy and ``eval_seconds``
        (when known; the step-0 evaluation replaces it later, ``budget.with_eval_seconds``) are
        summed over the run's real micro-batches and evaluations (``budget.estimate_run``).
        """
        import torch

        rng = torch.get_rng_state()
        batches = self._epoch_batches(0)
        self.loss_model.train()

        def one_pass(b: int) -> int:
            loss_sum, count = self.loss_model(**self._collate(batches[b]))
            self.accelerator.backward(loss_sum / count.clamp(min=1))
            return self._batch_tokens(batches[b])

        def optimizer_step() -> float:
            return budget_mod.time_optimizer_step(
                self.trainable, lr=self.lr, weight_decay=self.tc.weight_decay, max_grad_norm=self.tc.max_grad_norm
            )

        rate = budget_mod.probe_rate(one_pass, [self._batch_tokens(b) for b in batches], self.tc.probe_steps, optimizer_step)
        self.optimizer.zero_grad(set_to_none=True)
        torch.set_rng_state(rng)
        # Real micro-batches of the whole run (the per-rank time of a global token is per_token / world).
        micro = self.total_steps * self.micro_per_step
        train_tokens = sum(self._batch_tokens(self._micro_batch(i)) for i in range(micro))
        self._epoch_batches(0)
        rate.per_token /= self.world
        evals = self.total_steps // self.eval_steps + (1 if self.total_steps % self.eval_steps else 0)
        plan = budget_mod.RunPlan(
            train_tokens=train_tokens,
            steps=self.total_steps,
            evals=evals,
            micro_batches=self.total_steps * self.tc.gradient_accumulation,
            eval_tokens=sum(e.length for e in self.val_examples),
            generate_tokens=self._generate_tokens(),
        )
        budget = self.config.budget
        self.estimate = budget_mod.estimate_run(
            plan, rate, eval_seconds=eval_seconds, price_per_hour=budget.price_per_hour, currency=budget.currency
        )
        self._emit("estimate", estimate=self.estimate, message=f"estimate: {self.estimate}")
        if "budget" in self.disabled:
            return
        for f in budget_mod.check_estimate(self.estimate, budget):
            self.findings.append(f)  # before step 1: on screen and in train.json
            self._emit("estimate", finding=f, message=f"{f.severity.value} {f.code} {f.message}\n    fix: {f.fix}")

    def _generate_tokens(self) -> int:
        """Tokens one ``select_by: metric`` evaluation runs through the model: its prompts and the longest answers."""
        if self.probe is None:
            return 0
        prompts = sum(len(ids) for ids in self.tokenizer(self.probe.prompts, add_special_tokens=False)["input_ids"])
        return prompts + len(self.probe.prompts) * self.probe.max_new

    def _setup_tracking(self) -> None:
        from tunerail.train.tracking import environment, start_tracking

        self.tracker = start_tracking(self.config, self.store.root, run_id=self.run_id, run_name=self.out_dir.name, main_process=self.main)
        if self.run_id is None:
            self.run_id = self.tracker.run_id
            params = {
                "base_model": self.config.model.base,
                "method": self.method,
                "learning_rate": self.lr,
                "epochs": self.tc.epochs,
                "batch_size": self.tc.batch_size,
                "total_steps": self.total_steps,
                "eval_steps": self.eval_steps,
                "lora_r": self.tc.lora.r,
                "lora_alpha": self.tc.lora.alpha,
                "lora_dropout": self.tc.lora.dropout,
                "seed": self.tc.seed,
                "bf16": self.bf16,
                "processes": self.world,
                "replay_ratio": self.tc.replay_ratio,
                "prompt_version": pick_template(self.config).version,
                "guards_disabled": ",".join(self.disabled) or "none",
                "trainable_params": self.params.trainable,
                "total_params": self.params.total,
            }
            self.tracker.log_params(params)
            self.tracker.set_tags(
                {
                    "tunerail.config_fingerprint": self.config.fingerprint(),
                    "tunerail.parents": ",".join(self.data_info["lineage"]["parents"]) or "none",
                }
            )
            self.tracker.log_dict(self.config.model_dump(mode="json"), "config.json")
            self.tracker.log_dict(environment(), "environment.json")
            self.tracker.log_dict(self.data_info, "data.json")

    # -- data helpers --------------------------------------------------------------------------
    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        if epoch not in self._epoch_cache:
            self._epoch_cache = {epoch: length_grouped_batches(self.lengths, self.tc.batch_size, seed=self.tc.seed, epoch=epoch)}
        return self._epoch_cache[epoch]

    def _micro_batch(self, index: int) -> list[int]:
        return self._epoch_batches(index // self.batches_per_epoch)[index % self.batches_per_epoch]

    def _batch_tokens(self, batch: Sequence[int]) -> int:
        return max(self.lengths[i] for i in batch) * len(batch)

    def _collate(self, batch: Sequence[int], examples: Sequence[Example] | None = None) -> dict[str, Any]:
        rows = [(examples or self.train_examples)[i] for i in batch]
        out = collate(rows, self.tokenizer.pad_token_id)
        return {k: v.to(self.accelerator.device) for k, v in out.items()}

    # -- train ---------------------------------------------------------------------------------
    def train(self) -> None:
        """The step-0 evaluation, then optimizer steps until the end or a guard or hook stops the run (``stopped_reason``)."""
        if not self._before_first_step():
            return
        window_losses: list[float] = []
        tokens = self.history[-1]["tokens"] if self.history else 0
        session_start = time.perf_counter()
        elapsed_before = self.elapsed
        clock = budget_mod.RunClock(self.ckpt_root)
        while self.step < self.total_steps:
            lr = self.scheduler.get_last_lr()[0]
            loss_value, tokens, has_replay = self._optimizer_step(tokens)
            self.elapsed = elapsed_before + time.perf_counter() - session_start
            if self.main:
                clock.tick(self.elapsed, self.step)
            eta = self._follow_rate(tokens)
            self._emit("step", step=self.step, total=self.total_steps, loss=loss_value, lr=lr, seconds=self.elapsed, eta=eta)
            if "divergence" not in self.disabled:
                finding = self.divergence.check(loss_value, self.step, self.lr, stream="replay" if has_replay else "task")
                if finding is not None:
                    self.findings.append(finding)
                    self._emit("guard", finding=finding, message=f"error {finding.code} {finding.message}\n    fix: {finding.fix}")
                    self.stopped_reason = "divergence"
                    return
            window_losses.append(loss_value)
            if self._stop_after_step(window_losses, tokens):
                return

    def _before_first_step(self) -> bool:
        """The step-0 evaluation (timed into the estimate); False when the run must not take a step (hook, early stop, budget)."""
        eval_seconds = None
        if self.step == 0 and not self.history and self.val_examples:
            start = time.perf_counter()
            self._evaluate_and_checkpoint(train_loss=None, tokens=0, seconds=0.0)
            eval_seconds = time.perf_counter() - start
            if self._hook_stop is not None:
                self.stopped_reason = self._hook_stop
                return False
        if self.estimate is not None and eval_seconds is not None and self.estimate_basis == "probe":
            # The step-0 evaluation (with its checkpoint) was just timed: it replaces the per-token guess.
            self.estimate = budget_mod.with_eval_seconds(self.estimate, eval_seconds)
            if self.probe is not None and self.probe.seconds and "budget" not in self.disabled:
                for f in check_metric_cost(self.estimate, self.config.budget, self.probe.seconds[-1], len(self.probe.rows)):
                    self.findings.append(f)
                    self._emit("estimate", finding=f, message=f"{f.severity.value} {f.code} {f.message}\n    fix: {f.fix}")
        if self.val_examples and "early_stopping" not in self.disabled and self.early.should_stop:
            self.stopped_reason = "early_stopping"  # resumed after it had stopped by itself: nothing left to do
            return False
        reason = None if "budget" in self.disabled else budget_mod.over_budget(self.config.budget, self.elapsed)
        if reason is not None and self.step < self.total_steps:  # a resume past the cap: not one more step
            self.stopped_reason = "budget"
            self._emit("guard", message=f"budget: {reason} (over all sessions so far); not resuming")
            return False
        return True

    def _optimizer_step(self, tokens: int) -> tuple[float, int, bool]:
        """One optimizer step over ``gradient_accumulation`` micro-batches per process.

        Returns the step's mean loss (over processes), the global token count after it, and whether
        this process's batches held replay rows (the divergence guard tracks that stream apart).
        """
        import torch

        self.loss_model.train()
        first = self.step * self.micro_per_step
        step_loss = torch.zeros((), dtype=torch.float64)
        has_replay = False
        try:
            for k in range(self.tc.gradient_accumulation):
                batch = self._micro_batch(first + k * self.world + self.rank)
                has_replay = has_replay or any(i >= self.n_task_examples for i in batch)
                loss_sum, n = self.loss_model(**self._collate(batch))
                loss = loss_sum / n.clamp(min=1)
                self.accelerator.backward(loss / self.tc.gradient_accumulation)
                step_loss += loss.detach().double() / self.tc.gradient_accumulation
                tokens += sum(self._batch_tokens(self._micro_batch(first + k * self.world + r)) for r in range(self.world))
        except (torch.OutOfMemoryError, MemoryError) as exc:
            raise _oom(exc, self.tc.batch_size, self.config.model.max_seq_length) from None
        distributed.clip_grad_norm(self.loss_model, self.trainable, self.tc.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return float(self._mean_across_ranks(step_loss)), tokens, has_replay

    def _stop_after_step(self, window_losses: list[float], tokens: int) -> bool:
        """Budget, the caller's ``on_step`` hook, the scheduled evaluation and early stopping; True stops the run.

        ``window_losses`` (the training losses since the last evaluation) is emptied by an evaluation.
        """
        reason = None if "budget" in self.disabled else budget_mod.over_budget(self.config.budget, self.elapsed)
        evaluating = self.step % self.eval_steps == 0 or self.step == self.total_steps
        hook = self.hooks.on_step(self.step, evaluating) if self.hooks.on_step is not None and reason is None else None
        if self._any_rank(reason is not None or hook is not None):
            self.stopped_reason = hook or "budget"
            why = reason or ("stopped by the caller" if hook else "another process hit the budget")
            self._emit("guard", message=f"{hook or 'budget'}: {why}; stopping with a checkpoint")
            self._evaluate_and_checkpoint(_mean(window_losses), tokens, self.elapsed)
            return True
        if not evaluating:
            return False
        self._evaluate_and_checkpoint(_mean(window_losses), tokens, self.elapsed)
        window_losses.clear()
        if self._hook_stop is not None:
            self.stopped_reason = self._hook_stop
            return True
        if self.val_examples and "early_stopping" not in self.disabled and self.early.should_stop:
            self.stopped_reason = "early_stopping"
            what = f"val {self.probe.metric}" if self.probe is not None else "val loss"
            self._emit(
                "guard",
                message=(
                    f"early stopping: no improvement in {self.tc.patience} evaluations; "
                    f"best step {self.early.best_step} ({what} {self.early.best:.4f})"
                ),
            )
            return True
        return False

    def _follow_rate(self, tokens: int) -> float | None:
        """Seconds left at the measured running rate; after the warm-up steps, the measured estimate.

        Step 1 is excluded from the window (first-pass warm-up); steps 2..``warmup_steps`` are the
        measurement. The re-estimate is printed, recorded (``estimate``; the probe's is kept as
        ``probe_seconds``) and checked against the budget (TRN010) once.
        """
        if self.estimate is None:
            return None
        evals = sum(1 for h in self.history if h["step"] > 0)
        if self.step == 1:
            self._window = (self.elapsed, tokens, evals)
            self._eval_times = []
        elif self._window is not None and self.step == self.warmup_steps and self.estimate_basis == "probe":
            t0, k0, e0 = self._window
            probe = self.estimate
            window = budget_mod.Work(self.elapsed - t0, self.step - 1, tokens - k0, evals - e0, eval_seconds=sum(self._eval_times))
            done = budget_mod.Work(self.elapsed, self.step, tokens, evals)
            self.estimate = budget_mod.estimate_from_steps(probe, window, done)
            self.probe_seconds, self.estimate_basis = probe.seconds, f"steps 2-{self.step} measured"
            self._emit(
                "estimate",
                estimate=self.estimate,
                message=f"estimate from steps 2-{self.step}: {self.estimate} (probe said ~{probe.seconds / 60:.1f} min)",
            )
            if "budget" not in self.disabled and not any(f.code == "TRN010" for f in self.findings):
                for f in budget_mod.check_estimate(
                    self.estimate, self.config.budget, basis=f"estimated from the measured steps 2-{self.step}"
                ):
                    self.findings.append(f)
                    self._emit("guard", finding=f, message=f"{f.severity.value} {f.code} {f.message}\n    fix: {f.fix}")
        projected = self.estimate.projected(self.elapsed, self.step, tokens, evals)
        return max(0.0, projected - self.elapsed)

    def _mean_across_ranks(self, value: Any) -> Any:
        if self.world == 1:
            return value
        return self.accelerator.reduce(value.to(self.accelerator.device), reduction="mean").cpu()

    def _any_rank(self, flag: bool) -> bool:
        if self.world == 1:
            return flag
        import torch

        return bool(self.accelerator.reduce(torch.tensor([int(flag)], device=self.accelerator.device), reduction="sum").item())

    def evaluate(self) -> float | None:
        """Mean answer-token loss over the validation split (sharded over processes, then summed)."""
        import torch

        if not self.val_examples:
            return None
        self.loss_model.eval()
        order = sorted(range(len(self.val_examples)), key=lambda i: self.val_examples[i].length)
        size = self.tc.batch_size * 2
        batches = [order[i : i + size] for i in range(0, len(order), size)][self.rank :: self.world]
        total = torch.zeros(2, dtype=torch.float64, device=self.accelerator.device)
        with torch.no_grad():
            for batch in batches:
                loss_sum, n = self.loss_model(**self._collate(batch, self.val_examples))
                total += torch.stack([loss_sum.double(), n.double()])
        if self.world > 1:
            total = self.accelerator.reduce(total, reduction="sum")
        return float(total[0] / total[1].clamp(min=1))

    def _evaluate_and_checkpoint(self, train_loss: float | None, tokens: int, seconds: float) -> None:
        start = time.perf_counter()
        self._evaluate_and_checkpoint_timed(train_loss, tokens, seconds)
        if self.step > 0:
            self._eval_times.append(time.perf_counter() - start)

    def _evaluate_and_checkpoint_timed(self, train_loss: float | None, tokens: int, seconds: float) -> None:
        val_loss = self.evaluate()
        val_metric = self.probe(self._unwrapped()) if self.probe is not None else None
        row = {
            "step": self.step,
            "epoch": round(self.step * self.micro_per_step / self.batches_per_epoch, 4),
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_metric": val_metric,
            "lr": self.scheduler.get_last_lr()[0],
            "tokens": tokens,
            "seconds": round(seconds, 3),
        }
        self.history.append(row)
        # Without validation (guard switched off) the latest checkpoint is the one kept.
        score = val_metric if self.probe is not None else val_loss  # what train.select_by ranks checkpoints by
        improved = self.early.update(score, self.step) if score is not None else True
        if improved:
            self.best_dir = self._save_adapter(f"best-step-{self.step:06d}")
        if "overfitting" not in self.disabled and not any(f.code == "TRN021" for f in self.findings):
            finding = check_overfitting(self.history)
            if finding is not None:
                self.findings.append(finding)
                self._emit("guard", finding=finding, message=f"warning {finding.code} {finding.message}")
        self._save_state()
        if self.tracker is not None:
            self.tracker.log_metrics(
                {k: row[k] for k in ("train_loss", "val_loss", "val_metric", "lr", "tokens", "seconds", "epoch") if row[k] is not None},
                step=self.step,
            )
        self._emit("eval", **row, best_step=self.early.best_step)
        if self.hooks.on_eval is not None:
            self._hook_stop = self.hooks.on_eval(row)

    # -- checkpoints ---------------------------------------------------------------------------
    def _unwrapped(self) -> Any:
        return self.accelerator.unwrap_model(self.loss_model).model

    def _save_adapter(self, name: str) -> str:
        """The loadable checkpoint (peft ``save_pretrained``), written to a temp folder then renamed."""
        gathered = distributed.trainable_weights(self.accelerator, self.loss_model) if self.sharded else None  # every rank
        if self.main:
            with atomic_folder(self.ckpt_root / name) as tmp:
                if gathered is not None:
                    distributed.save_gathered(self._unwrapped(), gathered, tmp)
                else:
                    self._unwrapped().save_pretrained(tmp, safe_serialization=True)
        self.accelerator.wait_for_everyone()
        return name

    def _save_state(self) -> None:
        """Resume state (:class:`TrainState`): trainable weights, optimizer, scheduler, RNG, position, guard states.

        Written to a new folder, then ``latest.json`` is replaced atomically: a kill at any point
        leaves the previous checkpoint intact.
        """
        # Under FSDP both are collectives: every rank gathers, rank 0 alone writes.
        weights = distributed.trainable_weights(self.accelerator, self.loss_model) if self.main or self.sharded else {}
        optimizer = distributed.optimizer_state(self.loss_model, self.optimizer) if self.main or self.sharded else {}
        if self.main:
            state = TrainState(
                step=self.step,
                history=self.history,
                elapsed=self.elapsed,
                best_dir=self.best_dir,
                early=self.early.state_dict(),
                divergence=self.divergence.state_dict(),
                optimizer=optimizer,
                scheduler=self.scheduler.state_dict(),
                rng=capture_rng(),
                run_id=self.run_id,
                fingerprint=resume_fingerprint(self.config),
                stopped_reason=self.stopped_reason,
                lost_seconds=self.lost_seconds,
                estimate=self.estimate,
                estimate_basis=self.estimate_basis,
                probe_seconds=self.probe_seconds,
                findings=self.findings,
            )
            write_state(self.ckpt_root, state, weights, keep=self.best_dir)
        self.accelerator.wait_for_everyone()

    def _load_state(self, state: TrainState) -> None:
        folder = self.state_folder
        if distributed.load_trainable_weights(self.accelerator, self.loss_model, read_weights(folder)):
            raise TunerailError(
                Problem(
                    "the checkpoint does not match this model/adapter",
                    file=str(folder),
                    fix="resume with the same model.base and train.lora settings, or start a new --out",
                )
            )
        distributed.load_optimizer_state(self.loss_model, self.optimizer, state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        self.step, self.history = state.step, state.history
        lost = budget_mod.RunClock(self.ckpt_root).lost_since(state.elapsed)  # trained past this checkpoint, then killed
        self.lost_seconds, self.elapsed = state.lost_seconds + lost, state.elapsed + lost  # paid for, though redone
        self.best_dir, self.run_id = state.best_dir, state.run_id
        self.early = EarlyStopping(**state.early)
        self.divergence = DivergenceGuard(**state.divergence)
        self.estimate, self.estimate_basis, self.probe_seconds = state.estimate, state.estimate_basis, state.probe_seconds
        self.findings = list(state.findings)
        restore_rng(state.rng)

    # -- finish --------------------------------------------------------------------------------
    def finish(self) -> TrainResult:
        """Restore the best checkpoint, store it with lineage, record estimate vs actual."""
        if self.best_dir is None:  # diverged before any checkpoint: nothing good to keep
            raise GuardrailError(
                Problem(
                    "training diverged before the first checkpoint; no adapter was kept",
                    fix=self.findings[-1].fix if self.findings else "lower train.learning_rate",
                )
            )
        adapter_dir = self.out_dir / "adapter"
        if self.main:
            with atomic_folder(adapter_dir) as tmp:
                shutil.copytree(self.ckpt_root / self.best_dir, tmp, dirs_exist_ok=True)
        self.accelerator.wait_for_everyone()
        best = next((h for h in self.history if h["step"] == self.early.best_step), None)
        result = TrainResult(
            adapter_dir=adapter_dir,
            base_model=self.config.model.base,
            method=self.method,
            checkpoint_id=None,
            run_id=self.run_id,
            tracking_uri=getattr(self.tracker, "uri", None),
            history=self.history,
            best_step=self.early.best_step if best else int(self.best_dir.rsplit("-", 1)[-1]),
            best_val_loss=best["val_loss"] if best else None,
            best_val_metric=best.get("val_metric") if best else None,
            selection=selection_record(self.probe, self.tc.select_by if self.probe is not None else "loss", self.history),
            stopped_reason=self.stopped_reason,
            estimate=self.estimate.to_dict() if self.estimate else None,
            actual=self._actual(),
            findings=sort_findings(self.findings),
            guards_disabled=self.disabled,
            parameters={"trainable": self.params.trainable, "total": self.params.total},
            padding_waste=self.padding_waste,
            data=self.data_info,
            out_dir=self.out_dir,
            weights_sha256=weights_digest(distributed.trainable_weights(self.accelerator, self.loss_model)),
        )
        if self.main:
            self._store_result(result)
        self._emit("done", result=result)
        return result

    def _actual(self) -> dict[str, Any]:
        """What the run took (``train.json`` ``actual``), beside the estimate it was given."""
        import resource

        return {
            "steps": self.step,
            "tokens": self.history[-1]["tokens"] if self.history else 0,
            "seconds": round(self.elapsed, 2),
            "lost_seconds": round(self.lost_seconds, 2),  # included in seconds and cost: killed work redone
            "estimate_ratio": round(self.estimate.seconds / self.elapsed, 3) if self.estimate and self.elapsed else None,
            "estimate_basis": self.estimate_basis if self.estimate else None,
            "probe_seconds": self.probe_seconds,
            "cost": round(budget_mod.cost_of(self.elapsed, self.config.budget.price_per_hour), 4),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "processes": self.world,
        }

    def _store_result(self, result: TrainResult) -> None:
        """Main process: the adapter into the store with lineage, ``train.json``, and the tracker's copy."""
        meta = {
            "base_model": self.config.model.base,
            "method": self.method,
            "best_step": result.best_step,
            "best_val_loss": result.best_val_loss,
            "best_val_metric": result.best_val_metric,
            "select_by": result.selection["select_by"],
            "stopped_reason": self.stopped_reason,
            "mlflow_run_id": self.run_id,
            "prompt_version": pick_template(self.config).version,
            "config_fingerprint": self.config.fingerprint(),
        }
        artifact = self.store.add_folder(
            "checkpoint", result.adapter_dir, parents=self.data_info["lineage"]["parents"], transform="train", meta=meta
        )
        result.checkpoint_id = artifact.id
        write_atomic(self.out_dir / "train.json", json.dumps(result.to_dict(), indent=2, default=str))
        if self.tracker is not None:
            self.tracker.log_metrics(
                {"best_val_loss": result.best_val_loss or float("nan"), "actual_seconds": result.actual["seconds"]}, step=self.step
            )
            self.tracker.set_tags({"tunerail.checkpoint_id": artifact.id, "tunerail.stopped_reason": self.stopped_reason})
            self.tracker.log_dict(result.to_dict(), "train.json")
            self.tracker.log_artifacts(result.adapter_dir, "adapter")

    def cleanup(self, failed: bool = False) -> None:
        if self.tracker is not None:
            ok = self.stopped_reason in ("completed", "early_stopping") and not failed
            self.tracker.end("FINISHED" if ok else "FAILED" if failed or self.stopped_reason == "divergence" else "KILLED")
        self.accelerator.end_training()


def default_eval_steps(total_steps: int, steps_per_epoch: float) -> int:
    """Steps between evaluations: ~10 per run, and at least 4 per epoch.

    Early stopping acts after ``patience`` evaluations without improvement; with only ~10
    evaluations over a 40-epoch run it could not stop before epoch 12. Four per epoch lets
    the default patience (3) stop an overfitting run within its first epochs.
    """
    return max(1, min(total_steps // 10, math.ceil(steps_per_epoch / 4)))


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _oom(exc: BaseException, batch_size: int, max_len: int) -> TunerailError:
    return TunerailError(
        Problem(
            f"out of memory during a training step ({type(exc).__name__})",
            field="train.batch_size",
            fix=(
                f"lower train.batch_size (now {batch_size}) and raise train.gradient_accumulation to keep the effective batch, "
                f"or lower model.max_seq_length (now {max_len}); LoRA (train.method: lora) needs far less memory than full"
            ),
        )
    )
