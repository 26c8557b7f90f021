"""`tunerail train`: LoRA fine-tuning with every guardrail on by default.

The recipe (``tunerail.train.recipe``) reads top to bottom; the guardrails, lint, budget and
tracking are small modules it calls. ``prompting`` is shared with evaluation.
"""

from __future__ import annotations

from typing import Any

from tunerail._callable import make_callable

__all__ = ["train", "TrainResult", "build_messages", "render_prompt", "render_answer"]


def __getattr__(name: str) -> Any:
    if name in ("train", "TrainResult"):
        from tunerail.train import recipe

        return getattr(recipe, name)
    if name in ("build_messages", "render_prompt", "render_answer"):
        from tunerail.train import prompting

        return getattr(prompting, name)
    raise AttributeError(f"module 'tunerail.train' has no attribute {name!r}")


make_callable(__name__, "tunerail.train.recipe:train")
