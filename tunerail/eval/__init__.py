"""`tunerail eval`: criteria fixed in advance, baselines (cheap and base model), forgetting, judge, verdict.

Entry point: ``tunerail.evaluate(config, test_data=..., adapter_dir=..., out_dir=...)``
(``tunerail/eval/recipe.py``). Scoring is shared with select and sweep (``tunerail.tasks``,
``tunerail.scoring``, ``tunerail.metrics``). Submodules: ``generate`` (batched inference, label-constrained decoding, cached), ``alternatives`` (TF-IDF /
MiniLM + logistic regression, CRF / spaCy NER, nearest neighbour...), ``forgetting``, ``judge``, ``verdict``, ``rescore``, ``report``.
"""

from tunerail.eval.recipe import EvalResult, compare_prompts, evaluate, pick_template

__all__ = ["EvalResult", "compare_prompts", "evaluate", "pick_template"]
