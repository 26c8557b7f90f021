"""Sections ``train``, ``select`` and ``sweep``: the LoRA run with its guardrails, the model choice and the search."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tunerail.config.base import did_you_mean, _Section
from tunerail.names import GUARDS


class LoraConfig(_Section):
    r: int = Field(16, ge=1, le=1024, description="LoRA rank: capacity of the adapter.")
    alpha: int = Field(32, ge=1, description="LoRA scaling (alpha / r multiplies the update); 2 x r is the usual choice.")
    dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout; 0 trains ~15 % faster on CPU and rarely hurts small runs.")
    variant: Literal["lora", "dora", "rslora"] = Field(
        "lora",
        description=(
            "PEFT method on the same adapters: lora; dora (peft use_dora: magnitude and direction trained apart, often "
            "better at low rank, slower steps); rslora (peft use_rslora: alpha / sqrt(r) scaling, steadier at high rank, same cost)."
        ),
    )
    target_modules: list[str] | None = Field(
        None, description="Modules to adapt; default: detected per architecture (attention projections)."
    )


# Preference tuning methods (tunerail/train/preference_methods.py) and the validation metrics TRL logs for each:
# KTO sees unpaired examples, so it logs the mean reward margin but no per-pair accuracy.
PREFERENCE_METHODS: dict[str, tuple[str, ...]] = {"dpo": ("margin", "accuracy"), "orpo": ("margin", "accuracy"), "kto": ("margin",)}


class PreferenceConfig(_Section):
    """``train.method: dpo | orpo | kto``: preference tuning on (prompt, chosen, rejected) pairs (tunerail/train/preference.py)."""

    beta: float = Field(
        0.1,
        gt=0,
        description=(
            "dpo and kto: how far the policy may move from the reference (0.1: the papers' and TRL's default); orpo: the "
            "weight of the odds-ratio term added to the SFT loss (the paper's lambda, TRL's default 0.1)."
        ),
    )
    loss_type: Literal["sigmoid", "ipo", "hinge"] = Field(
        "sigmoid",
        description=(
            "dpo only, TRL's DPO loss: sigmoid (DPO paper), ipo (bounded, resists overfitting noisy votes) or hinge (SLiC). "
            "orpo and kto have their paper's loss."
        ),
    )
    validation_share: float = Field(
        0.2, gt=0, lt=1, description="Share of prompts held out (whole prompts, seeded) for early stopping and the before/after check."
    )
    metric: Literal["margin", "accuracy"] = Field(
        "margin",
        description=(
            "Early-stopping metric on the validation pairs: margin (mean reward margin, smooth) or accuracy "
            "(share of pairs the policy ranks right; coarse on few pairs; dpo and orpo only: kto sees unpaired examples)."
        ),
    )


class TrainConfig(_Section):
    method: Literal["lora", "qlora", "full", "dpo", "orpo", "kto"] = Field(
        "lora",
        description=(
            "lora (default), qlora (needs CUDA + bitsandbytes), full fine-tuning, or preference tuning of a LoRA adapter "
            "on review votes or a prompt/chosen/rejected file (`tunerail train --pairs`, train.preference): dpo (against "
            "the SFT adapter as reference), orpo (reference-free: an odds-ratio term added to the SFT loss on the chosen "
            "answer; one model in memory) or kto (each pair gives a desirable and an undesirable example, judged alone "
            "against the reference; fits votes on single answers)."
        ),
    )
    learning_rate: float | None = Field(
        None, gt=0, description="Default by method: LoRA 2e-4, full 2e-5, dpo and kto 5e-6, orpo 8e-6 (train/lint.py says where from)."
    )
    epochs: float = Field(3, gt=0, description="Upper bound; early stopping usually ends sooner.")
    batch_size: int = Field(8, ge=1, description="Rows per optimizer step (before gradient accumulation).")
    gradient_accumulation: int = Field(1, ge=1, description="Steps accumulated before an optimizer update.")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of steps with linear warmup before the cosine decay.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping.")
    eval_steps: int | None = Field(
        None,
        ge=1,
        description="Evaluate every N steps; default: about 10 evaluations per run and at least 4 per epoch (so early stopping can act in the first epochs).",
    )
    early_stopping: bool = Field(
        True,
        description="Stop when train.select_by's criterion (validation loss or the task metric) stops improving (guardrail; switching it off is recorded).",
    )
    patience: int = Field(3, ge=1, description="Evaluations without improvement before stopping.")
    select_by: Literal["loss", "metric"] = Field(
        "loss",
        description=(
            "What picks the restored checkpoint and drives early stopping. loss (default): validation loss, free (computed "
            "anyway). metric: the task metric (train.metric, default criteria.metric) on train.metric_rows validation rows, "
            "answered at every evaluation with the eval step's own decoding and scorer; higher is better. Why loss is the "
            "default (bench/select_by.py, WNUT-17 recipe on 400 rows): loss picked step 56 (val F1 0.409), F1 picked step 32 "
            "(0.434), a gap smaller than the F1 swing between neighbouring evaluations on 99 rows (up to 0.28), while the "
            "generation took ~60 % of the training clock; the cost is charged to the budget (TRN012)."
        ),
    )
    metric: str | None = Field(
        None, description="Metric for select_by: metric; default criteria.metric. Any the task's eval computes except perplexity."
    )
    metric_rows: int = Field(
        100,
        ge=1,
        description=(
            "Validation rows generated at each evaluation for select_by: metric: a fixed subset drawn with train.seed (all rows "
            "when fewer), recorded in train.json. Cost grows linearly; 100 rows resolve ~0.05 of F1."
        ),
    )
    seed: int = Field(13, description="Seed for data order, LoRA init and dropout.")
    bf16: bool | Literal["auto", "autocast"] = Field(
        "auto",
        description=(
            "bf16 compute. auto: bf16 base weights under LoRA on a bf16-capable GPU; bf16 autocast on a CPU with native "
            "bf16 (2.9x fp32 measured, bench/train.py), fp32 elsewhere; true: bf16 base weights; autocast: fp32 weights "
            "under torch.autocast; false: fp32."
        ),
    )
    loss_on: Literal["all", "last", "sequence"] = Field(
        "all",
        description=(
            "Tokens the loss covers. all (default, as TRL's assistant_only_loss and Axolotl's roles_to_train): every "
            "assistant turn of a chat record, each with its end-of-turn marker; last: the final assistant turn only "
            "(earlier turns are context); sequence: every token, prompt included."
        ),
    )
    replay_ratio: float = Field(0.0, ge=0, lt=1, description="Share of general instruction rows mixed in to limit forgetting.")
    lora: LoraConfig = Field(default_factory=LoraConfig)
    preference: PreferenceConfig = Field(default_factory=PreferenceConfig)
    guards: dict[str, bool] = Field(
        default_factory=dict,
        description=("Switch individual guardrails off, e.g. {divergence: false}; every switch-off is recorded in the run."),
    )
    shared_prefix: bool = Field(
        True,
        description=(
            "Run the prompt prefix all rows of a batch share (system turn, template start) once per batch and reuse its "
            "key/value cache for every row, in training and validation loss (same loss and gradients; bench/train.py)."
        ),
    )
    distributed: Literal["ddp", "fsdp", "deepspeed"] = Field(
        "ddp",
        description=(
            "How several processes (`accelerate launch` / `torchrun`) share the training. ddp (default): every rank holds the "
            "whole model and gradients are averaged; fits whenever one GPU holds the model. fsdp: base weights, adapters and "
            "optimizer state sharded over the ranks (accelerate's FSDP plugin, transformer-layer wrapping, use_orig_params for "
            "LoRA); for models one GPU cannot hold; CUDA only. deepspeed: ZeRO-2 through accelerate's DeepSpeed plugin; needs "
            "the deepspeed package. One process ignores it. See tunerail/train/distributed.py."
        ),
    )
    probe_steps: int = Field(
        4,
        ge=0,
        description=(
            "Forward+backward passes timed before training for the time/cost estimate, after one warm-up pass "
            "(no update; 0 skips the probe)."
        ),
    )

    @model_validator(mode="after")
    def _preference_combinations(self) -> "TrainConfig":
        """Settings a preference method does not have fail here, naming the field, not deep inside TRL."""
        if self.method not in PREFERENCE_METHODS:
            return self
        if self.preference.metric not in PREFERENCE_METHODS[self.method]:
            raise ValueError(
                f"train.preference.metric {self.preference.metric!r} is not logged by {self.method} (it sees unpaired examples); "
                f"use one of: {', '.join(PREFERENCE_METHODS[self.method])}"
            )
        if self.method != "dpo" and "loss_type" in self.preference.model_fields_set:
            raise ValueError(f"train.preference.loss_type is DPO's loss; {self.method} has its own: remove it, or use train.method: dpo")
        if self.method == "kto" and self.batch_size < 2:
            raise ValueError(
                "train.batch_size must be 2 or more for kto: its KL term pairs each example with another one's answer in the batch"
            )
        return self

    @field_validator("guards")
    @classmethod
    def _known_guards(cls, guards: dict[str, bool]) -> dict[str, bool]:
        unknown = [k for k in guards if k not in GUARDS]
        if unknown:
            raise ValueError(
                f"unknown guardrail(s) {', '.join(map(repr, unknown))}{did_you_mean(unknown[0], GUARDS)}; guardrails: {', '.join(GUARDS)}"
            )
        return guards


class SelectConfig(_Section):
    sample_rows: int = Field(200, ge=10, description="Validation (or seeded sample) rows each candidate is probed on.")
    few_shot: int = Field(3, ge=0, le=8, description="k for the k-shot task score (0 = zero-shot only).")
    probe_steps: int = Field(3, ge=0, description="Training steps timed per candidate for the time, memory and cost estimate.")
    seed: int = Field(13, description="Seed for the sample and the bootstrap.")
    alpha: float = Field(
        0.05,
        gt=0,
        lt=1,
        description=("A candidate counts as worse than the best only when the paired bootstrap says so at this level (one-sided)."),
    )
    near_zero: float = Field(
        0.05,
        ge=0,
        le=1,
        description=("When every candidate's task-score CI upper bound is below this, bits per byte decides instead (SEL031)."),
    )
    bootstrap: int = Field(1000, ge=100, description="Bootstrap resamples for the CIs and the paired comparisons.")
    batch_size: int = Field(16, ge=1, description="Rows per scoring / generation batch.")
    language_bpb_ratio: float = Field(
        1.5,
        gt=1,
        description=(
            "Non-English data: warn (SEL041) when a candidate's bits per byte on it exceed this many times its bits per "
            "byte on the English general suite (a model that does not know the language shows it)."
        ),
    )


class SweepConfig(_Section):
    enabled: bool = Field(
        True,
        description=(
            "`tunerail run` sweeps between leakage and train inside budget.search_share (needs budget.max_hours) and trains "
            "with the best setting; false trains the hand-set setting (recorded in the train step)."
        ),
    )
    trials: int = Field(12, ge=1, description="Most trials to run (the budget share may end the sweep sooner).")
    sampler: Literal["tpe", "random", "grid"] = Field("tpe", description="Optuna sampler (TPE by default).")
    pruner: Literal["median", "successive_halving", "hyperband", "none"] = Field(
        "median", description=("Optuna pruner acting on validation loss at each evaluation.")
    )
    objective: Literal["val_loss", "metric"] = Field(
        "val_loss", description=("What the sweep minimises/maximises: validation loss, or the task metric on validation.")
    )
    space: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Override or fix dimensions, e.g. {learning_rate: {low: 1e-4, high: 1e-3, log: true}, batch_size: 8}. "
            "Defaults by method: learning rate, epochs, batch size, LoRA r and alpha, warmup, replay. Seed is never searched."
        ),
    )
    storage: str | None = Field(
        None, description="Optuna storage URL; default SQLite in the run folder; postgresql://... for many workers."
    )
    study: str | None = Field(None, description="Study name shared by workers; default derived from the project and inputs.")
    startup_trials: int = Field(3, ge=0, description="Trials the median pruner lets finish before it prunes any.")
    evals_per_epoch: int = Field(
        4, ge=1, description=("Evaluations per epoch inside trials (the pruner's steps; aligned across batch sizes).")
    )
    metric_rows: int = Field(200, ge=1, description="Validation rows generated per trial when objective is metric.")
    heartbeat_seconds: int = Field(
        30, ge=1, description=("Worker heartbeat; a trial whose worker is silent for twice this is marked failed and retried.")
    )
    fidelity: Literal["full", "rows", "steps"] = Field(
        "full",
        description=(
            "full: every trial trains at full length (a share that fits one trial compares nothing). rows / steps: "
            "multi-fidelity successive halving: many settings trained on sweep.min_fraction of the training rows (a seeded "
            "subset) or of the steps, the best 1/eta run eta times longer, up to full length for the winner (one worker)."
        ),
    )
    min_fraction: float = Field(
        1 / 9,
        gt=0,
        le=1,
        description="Fidelity of the first rung (share of rows or steps); 1/9 with eta 3 gives rungs 1/9, 1/3, 1.",
    )
    eta: int = Field(3, ge=2, description="Successive halving keeps the best 1/eta of each rung and runs them eta times longer.")

    @model_validator(mode="after")
    def _seed_not_searched(self) -> "SweepConfig":
        if "seed" in self.space:
            raise ValueError("the seed is never searched (a sweep would pick the luckiest seed); set train.seed instead")
        return self
