"""Hyperparameter lint: run before the first step, each rule a small pure function with a code.

A rule returns findings that say what is off, why it matters and what to set instead. Errors
stop the run before compute is spent (switch the lint off with ``train.guards: {lint: false}``,
which is recorded); warnings and infos are shown and recorded.

| code   | check                     | fires when |
| ------ | ------------------------- | ---------- |
| TRN001 | lint.learning_rate        | lr far outside the usual range for the method |
| TRN002 | lint.epochs               | epochs x dataset size likely to overfit |
| TRN003 | lint.batch_size           | batch large for the data (few optimizer steps per epoch) |
| TRN004 | lint.truncation           | max_seq_length truncates a large share of rows |
| TRN005 | lint.lora_rank            | LoRA rank odd for the data size, or alpha/r unusual |
| TRN006 | lint.full_finetune        | full fine-tuning: cost and forgetting |
| TRN007 | lint.validation_size      | validation split too small for early stopping to be reliable |
| TRN008 | lint.guard_disabled       | a guardrail was switched off |
| TRN009 | lint.replay_truncation    | tunerail's own replay rows (not the user's) do not fit max_seq_length |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from tunerail.data.records import RowRef
from tunerail.errors import GuardrailError, Problem

from tunerail.findings import Finding, Severity, sort_findings

# Usual learning-rate ranges by method: (low, high) warn outside; x10 beyond is an error.
# dpo: a LoRA adapter pushed by a preference loss, far more sensitive than SFT (alignment-handbook's LoRA DPO: 5e-6).
# orpo: 8e-6 (M. Labonne's LoRA ORPO guide, "Fine-tune Llama 3 with ORPO", 2024); kto: as dpo (TRL's scripts/kto.py: "similar to DPO").
LR_RANGE = {
    "lora": (1e-5, 1e-3),
    "qlora": (1e-5, 1e-3),
    "full": (1e-6, 1e-4),
    "dpo": (1e-7, 1e-4),
    "orpo": (1e-7, 1e-4),
    "kto": (1e-7, 1e-4),
}
LR_DEFAULT = {"lora": 2e-4, "qlora": 2e-4, "full": 2e-5, "dpo": 5e-6, "orpo": 8e-6, "kto": 5e-6}


@dataclass
class LintInputs:
    """What the lint looks at: the resolved settings and measured data sizes."""

    method: str
    learning_rate: float
    epochs: float
    batch_size: int  # effective: batch x accumulation x processes
    n_train: int
    n_validation: int
    max_seq_length: int
    lora_r: int | None = None
    lora_alpha: int | None = None
    early_stopping: bool = True
    truncated: list[RowRef] = field(default_factory=list)  # the user's (task) rows only
    replay_rows: int = 0  # tunerail's bundled replay rows mixed in (train.replay_ratio)
    replay_truncated: int = 0  # of those, rows cut at max_seq_length
    disabled_guards: list[str] = field(default_factory=list)


def lint_learning_rate(x: LintInputs) -> list[Finding]:
    low, high = LR_RANGE[x.method]
    if low <= x.learning_rate <= high:
        return []
    far = x.learning_rate > 10 * high or x.learning_rate < low / 10
    side = "high" if x.learning_rate > high else "low"
    consequence = "the loss will likely diverge (NaN or spikes)" if side == "high" else "the model will barely move"
    return [
        Finding(
            "lint.learning_rate",
            Severity.ERROR if far else Severity.WARNING,
            f"learning_rate {x.learning_rate:.1e} is {'far ' if far else ''}{side} for {x.method} "
            f"(usual range {low:.0e}-{high:.0e}): {consequence}",
            f"set train.learning_rate to {LR_DEFAULT[x.method]:.0e} (the {x.method} default) or leave it empty",
            code="TRN001",
            details={"value": x.learning_rate, "range": [low, high]},
        )
    ]


def lint_epochs(x: LintInputs) -> list[Finding]:
    # Small data seen many times is memorised: >3 passes under 1k rows, >5 passes under 10k.
    limit = 3 if x.n_train < 1000 else 5 if x.n_train < 10000 else 10
    if x.epochs <= limit:
        return []
    severity = Severity.WARNING if x.early_stopping else Severity.ERROR
    return [
        Finding(
            "lint.epochs",
            severity,
            f"{x.epochs:g} epochs over {x.n_train} training rows ({x.epochs * x.n_train:,.0f} row passes) is likely to overfit"
            + ("" if x.early_stopping else " and early stopping is off"),
            f"use at most {limit} epochs for {x.n_train} rows" + ("" if x.early_stopping else ", and keep train.early_stopping on"),
            code="TRN002",
            details={"epochs": x.epochs, "n_train": x.n_train, "limit": limit},
        )
    ]


def lint_batch_size(x: LintInputs) -> list[Finding]:
    steps = x.n_train / x.batch_size if x.batch_size else 0
    if steps >= 10:
        return []
    suggest = max(1, x.n_train // 20)
    return [
        Finding(
            "lint.batch_size",
            Severity.WARNING,
            f"batch size {x.batch_size} gives only {steps:.1f} optimizer steps per epoch over {x.n_train} rows: "
            "too few updates to learn from, and early stopping sees too few evaluations",
            f"lower train.batch_size (or gradient_accumulation) to about {suggest}",
            code="TRN003",
            details={"batch_size": x.batch_size, "steps_per_epoch": steps},
        )
    ]


def lint_truncation(x: LintInputs, share: float = 0.05, most: float = 0.5) -> list[Finding]:
    """TRN004 on the user's rows only; above ``most`` (half the rows cut) training is refused."""
    total = x.n_train
    cut = len(x.truncated)
    if not total or cut / total <= share:
        return []
    refuse = cut / total > most
    return [
        Finding(
            "lint.truncation",
            Severity.ERROR if refuse else Severity.WARNING,
            f"max_seq_length {x.max_seq_length} truncates {cut} of your {total} training rows "
            f"({100 * cut / total:.0f} %): the model learns from cut-off prompts"
            + ("; most rows would be cut, so training stops here" if refuse else ""),
            "raise model.max_seq_length, or shorten/remove the longest rows (`tunerail doctor` lists them)",
            rows=list(x.truncated),
            code="TRN004",
            details={"truncated": cut, "share": cut / total},
        )
    ]


def lint_replay_truncation(x: LintInputs) -> list[Finding]:
    """TRN009: the bundled replay rows are tunerail's, so the fix is a setting, never the user's data."""
    if not x.replay_truncated:
        return []
    return [
        Finding(
            "lint.replay_truncation",
            Severity.WARNING,
            f"{x.replay_truncated} of the {x.replay_rows} replay rows tunerail mixes in (its bundled general "
            f"instructions, not your data) are longer than max_seq_length {x.max_seq_length} and are cut",
            "raise model.max_seq_length, or lower train.replay_ratio; your own data needs no change",
            code="TRN009",
            details={"replay_truncated": x.replay_truncated, "replay_rows": x.replay_rows},
        )
    ]


def lint_lora_rank(x: LintInputs) -> list[Finding]:
    if x.method == "full" or x.lora_r is None:
        return []
    out: list[Finding] = []
    if x.lora_r > 64 and x.n_train < 10_000:
        out.append(
            Finding(
                "lint.lora_rank",
                Severity.WARNING,
                f"LoRA rank {x.lora_r} is large for {x.n_train} rows: more capacity to memorise, slower steps",
                "use train.lora.r 8-32 for datasets under 10k rows",
                code="TRN005",
                details={"r": x.lora_r, "n_train": x.n_train},
            )
        )
    elif x.lora_r < 4 and x.n_train > 50_000:
        out.append(
            Finding(
                "lint.lora_rank",
                Severity.WARNING,
                f"LoRA rank {x.lora_r} is small for {x.n_train} rows: the adapter may underfit",
                "use train.lora.r 16-64 for large datasets",
                code="TRN005",
                details={"r": x.lora_r, "n_train": x.n_train},
            )
        )
    if x.lora_alpha is not None and not (0.5 <= x.lora_alpha / x.lora_r <= 4):
        out.append(
            Finding(
                "lint.lora_rank",
                Severity.WARNING,
                f"LoRA alpha/r = {x.lora_alpha}/{x.lora_r} = {x.lora_alpha / x.lora_r:.2f} scales updates unusually "
                "(the learning rate defaults assume alpha = 2 x r)",
                f"set train.lora.alpha to {2 * x.lora_r}",
                code="TRN005",
                details={"r": x.lora_r, "alpha": x.lora_alpha},
            )
        )
    return out


def lint_full_finetune(x: LintInputs) -> list[Finding]:
    if x.method != "full":
        return []
    return [
        Finding(
            "lint.full_finetune",
            Severity.WARNING,
            "full fine-tuning updates every weight: several times the memory and time of LoRA, "
            "a full-size checkpoint per save, and more forgetting of general abilities",
            "prefer train.method: lora; if full is needed keep the learning rate near 2e-5 and set train.replay_ratio "
            "(e.g. 0.1) to mix in general instructions",
            code="TRN006",
        )
    ]


def lint_validation_size(x: LintInputs, minimum: int = 20) -> list[Finding]:
    if "validation" in x.disabled_guards or x.n_validation >= minimum:
        return []
    return [
        Finding(
            "lint.validation_size",
            Severity.WARNING,
            f"the validation split has {x.n_validation} rows: its loss is too noisy for early stopping "
            "and best-checkpoint selection to be reliable",
            f"use at least {minimum} validation rows (split.validation >= 0.1)",
            code="TRN007",
            details={"n_validation": x.n_validation},
        )
    ]


def lint_disabled_guards(x: LintInputs) -> list[Finding]:
    return [
        Finding(
            "lint.guard_disabled",
            Severity.INFO,
            f"guardrail '{name}' is switched off for this run",
            f"remove train.guards.{name} (or set it to true) to turn it back on",
            code="TRN008",
            details={"guard": name},
        )
        for name in x.disabled_guards
    ]


RULES: tuple[Callable[[LintInputs], list[Finding]], ...] = (
    lint_learning_rate,
    lint_epochs,
    lint_batch_size,
    lint_truncation,
    lint_replay_truncation,
    lint_lora_rank,
    lint_full_finetune,
    lint_validation_size,
    lint_disabled_guards,
)


def lint_hyperparameters(x: LintInputs) -> list[Finding]:
    """Every lint rule's findings; a crashing rule becomes an error finding, never silence."""
    out: list[Finding] = []
    for rule in RULES:
        try:
            out.extend(rule(x))
        except Exception as exc:  # noqa: BLE001 - a broken rule must be visible, not silent
            out.append(
                Finding(
                    "lint.crashed",
                    Severity.ERROR,
                    f"lint rule {rule.__name__} crashed: {exc!r}",
                    "report this bug; set train.guards.lint: false to run anyway",
                    code="TRN099",
                )
            )
    return out


def gate(findings: list[Finding], disabled: Sequence[str], show: Callable[[Finding], None] | None = None) -> list[Finding]:
    """The lint findings a run keeps, refusing the run on an error: SFT and preference runs share this rail.

    ``train.guards.lint: false`` keeps only TRN008 (which guards are off). Each kept finding is shown
    (``show``, most severe first); then any error raises :class:`GuardrailError` naming its fix, before a
    step is spent."""
    kept = [f for f in findings if f.code == "TRN008"] if "lint" in disabled else list(findings)
    if show is not None:
        for f in sort_findings(kept):
            show(f)
    errors = [f for f in kept if f.severity == Severity.ERROR]
    if errors:
        raise GuardrailError(
            [Problem(f"{f.code} {f.message}", field="train", fix=f.fix + " (or set train.guards.lint: false)") for f in errors]
        )
    return kept
