"""`tunerail eval`: criteria fixed in advance, baselines (cheap and base model), forgetting, judge, verdict.

Entry point: ``tunerail.evaluate(config, test_data=..., adapter_dir=..., out_dir=...)``, or
``run_eval(config, EvalInputs(...))`` (``tunerail/eval/recipe.py``: one function per stage). Scoring is
shared with select and sweep (``tunerail.tasks``, ``tunerail.scoring``, ``tunerail.metrics``). Submodules:
``inputs`` (what eval reads), ``alternatives`` (TF-IDF / MiniLM + logistic regression, CRF / spaCy NER,
nearest neighbour...), ``inference`` + ``generate`` (batched inference, label-constrained decoding, cached),
``compare`` (estimates, the baseline table, paired gains), ``stages`` (forgetting, judge, review material),
``verdict`` + ``verdict_context``, ``rescore``, ``report``.
"""

from tunerail.eval.recipe import EvalInputs, EvalResult, compare_prompts, evaluate, pick_template, run_eval

__all__ = ["EvalInputs", "EvalResult", "compare_prompts", "evaluate", "pick_template", "run_eval"]
