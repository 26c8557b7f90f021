"""`tunerail train`: LoRA fine-tuning with every guardrail on by default.

The recipe (``tunerail.train.recipe``) reads top to bottom; the guardrails, lint, budget and
tracking are small modules it calls. ``prompting`` is shared with evaluation.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__all__ = ["train", "TrainResult", "build_messages", "render_prompt", "render_answer"]


def __getattr__(name: str) -> Any:
    if name in ("train", "TrainResult"):
        from tunerail.train import recipe

        return getattr(recipe, name)
    if name in ("build_messages", "render_prompt", "render_answer"):
        from tunerail.train import prompting

        return getattr(prompting, name)
    raise AttributeError(f"module 'tunerail.train' has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """``tunerail.train(config, ...)`` must work even after ``import tunerail.train.x`` has set
    the ``tunerail.train`` attribute to this package instead of the lazily resolved function."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from tunerail.train.recipe import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
