"""Alternatives to a fine-tuned LLM, chosen by task and answer shape (issue 21): see ``registry.py``."""

from tunerail.eval.alternatives.base import Alternative, FitData, Fitted, fit_one
from tunerail.eval.alternatives.registry import ALL, FAMILIES, AlternativesRun, choose, fit_alternatives, for_eval
from tunerail.eval.alternatives.shape import answer_shape, is_summary_like, values_are_spans

__all__ = [
    "ALL",
    "FAMILIES",
    "Alternative",
    "AlternativesRun",
    "FitData",
    "Fitted",
    "answer_shape",
    "choose",
    "fit_alternatives",
    "fit_one",
    "for_eval",
    "is_summary_like",
    "values_are_spans",
]
