"""`tunerail train`: LoRA fine-tuning with every guardrail on by default.

The recipe (``tunerail.train.recipe``) reads top to bottom; the guardrails, lint, budget and
tracking are small modules it calls. Prompts are rendered by ``tunerail.prompting``, shared with
every other step.
"""

from __future__ import annotations

from typing import Any

from tunerail._callable import make_callable

__all__ = ["train", "TrainResult"]


def __getattr__(name: str) -> Any:
    if name in ("train", "TrainResult"):
        from tunerail.train import recipe

        return getattr(recipe, name)
    raise AttributeError(f"module 'tunerail.train' has no attribute {name!r}")


make_callable(__name__, "tunerail.train.recipe:train")
