"""What each preference method (``train.method: dpo | orpo | kto``) takes from TRL; the run and its rails are shared.

``tunerail/train/preference.py`` runs one code path for all three: pair audit, held-out prompts,
LoRA, early stopping, budget, displacement check, lineage. A method only picks:

| method | TRL classes | reference model | rows it reads | validation metrics TRL logs |
|---|---|---|---|---|
| dpo | ``DPOConfig``/``DPOTrainer`` | SFT adapter (frozen copy) or the base | pairs | ``eval_rewards/margins``, ``eval_rewards/accuracies`` |
| orpo | ``trl.experimental.orpo`` | none: an odds-ratio term added to the SFT loss | pairs | the same |
| kto | ``KTOConfig``/``KTOTrainer`` | as dpo | each pair -> a desirable and an undesirable example | ``eval_rewards/margins`` |

Papers: DPO, Rafailov et al. 2023 (arXiv:2305.18290); ORPO, Hong et al. 2024 (arXiv:2403.07691);
KTO, Ethayarajh et al. 2024 (arXiv:2402.01306). TRL is imported only when a trainer is built.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from tunerail.config.train import PREFERENCE_METHODS

METRIC_KEYS = {"margin": "eval_rewards/margins", "accuracy": "eval_rewards/accuracies"}  # what TRL logs at each evaluation


@dataclass(frozen=True)
class PreferenceMethod:
    """One method's choices: its TRL classes, its own settings, its dataset shape, whether it has a reference."""

    name: str
    has_reference: bool  # compared with a frozen copy of the starting policy (dpo, kto), or reference-free (orpo)
    classes: Callable[[], tuple[type, type]]  # (TRL config class, TRL trainer class), imported on call
    settings: Callable[[Any], dict[str, Any]]  # train.preference -> the method's own TRL config fields
    rows: Callable[[Sequence[Any], int], list[dict[str, Any]]]  # rendered pairs, seed -> the dataset rows TRL reads

    def metric_key(self, metric: str) -> str:
        """The logged validation metric early stopping and the best checkpoint follow (config validated the pair)."""
        if metric not in PREFERENCE_METHODS[self.name]:  # the config refuses it first (train.preference.metric)
            raise ValueError(f"{self.name} does not log {metric!r}")
        return METRIC_KEYS[metric]

    def reference(self, adapter: Any, base: str) -> str:
        """What the policy is compared with, for train.json and the store."""
        if not self.has_reference:
            start = f"SFT adapter {adapter}" if adapter else f"a fresh LoRA on {base}"
            return f"none (orpo is reference-free; started from {start})"
        return f"SFT adapter {adapter}" if adapter else f"base model {base}"


def paired_rows(rows: Sequence[Any], seed: int) -> list[dict[str, Any]]:
    """DPO and ORPO read (prompt, chosen, rejected) rows as rendered."""
    return [{"prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected} for r in rows]


def unpaired_rows(rows: Sequence[Any], seed: int) -> list[dict[str, Any]]:
    """KTO: each pair gives a desirable (chosen) and an undesirable (rejected) example for its prompt.

    Ordered for TRL's sequential KTO sampler: labels alternate, so every batch of two or more holds
    both (TRL logs the margin of batches that do), and neighbours come from different pairs, so the
    KL term's completions, cycled by one inside each batch, answer another prompt, as KTO estimates it.
    """
    n = len(rows)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    first = [(i, k % 2 == 0) for k, i in enumerate(order)]
    shift = 1 if n % 2 == 0 else 0  # keeps the labels alternating across the seam, with different pairs either side
    second = [(order[(k + shift) % n], (k + shift) % n % 2 == 1) for k in range(n)]
    return [
        {"prompt": rows[i].prompt, "completion": rows[i].chosen if good else rows[i].rejected, "label": good} for i, good in first + second
    ]


def _dpo_classes() -> tuple[type, type]:
    from trl import DPOConfig, DPOTrainer

    return DPOConfig, DPOTrainer


def _orpo_classes() -> tuple[type, type]:
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    return ORPOConfig, ORPOTrainer


def _kto_classes() -> tuple[type, type]:
    from trl import KTOConfig, KTOTrainer

    return KTOConfig, KTOTrainer


METHODS = {
    "dpo": PreferenceMethod("dpo", True, _dpo_classes, lambda pc: {"beta": pc.beta, "loss_type": [pc.loss_type]}, paired_rows),
    "orpo": PreferenceMethod("orpo", False, _orpo_classes, lambda pc: {"beta": pc.beta}, paired_rows),
    "kto": PreferenceMethod("kto", True, _kto_classes, lambda pc: {"beta": pc.beta}, unpaired_rows),
}
