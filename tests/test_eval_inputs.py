"""eval's inputs dataclass: the public ``evaluate(...)`` keywords and ``EvalInputs`` are one list, with one set of defaults."""

from __future__ import annotations

import dataclasses
import inspect

from tunerail.eval import EvalInputs, evaluate, run_eval


def test_evaluate_takes_exactly_the_eval_inputs_fields_with_the_same_defaults():
    """A keyword added to evaluate() but not to EvalInputs (or a default that drifts) would be dropped silently."""
    params = {name: p for name, p in inspect.signature(evaluate).parameters.items() if name != "config"}
    fields = {f.name: f for f in dataclasses.fields(EvalInputs)}
    assert set(params) == set(fields)
    for name, p in params.items():
        default = fields[name].default
        assert p.default is inspect.Parameter.empty and default is dataclasses.MISSING or p.default == default, name
    assert list(inspect.signature(run_eval).parameters) == ["config", "inputs"]
