"""`tunerail train`: LoRA fine-tuning with every guardrail on by default.

The recipe (``tunerail.train.recipe``) reads top to bottom; the guardrails, lint, budget and
tracking are small modules it calls. Prompts are rendered by ``tunerail.prompting``, shared with
every other step.
"""

from tunerail._callable import make_callable
from tunerail.train.recipe import TrainResult, train

__all__ = ["TrainResult", "train"]

make_callable(__name__, train)
