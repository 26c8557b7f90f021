"""Alternatives to a fine-tuned LLM, chosen by task and answer shape (issue 21): see ``registry.py``."""

from tunerail.eval.alternatives.base import Alternative, FitData, Fitted, fit_one
from tunerail.eval.alternatives.budget import local_budget, slow_findings
from tunerail.eval.alternatives.hosted import fit_hosted, hosted_messages
from tunerail.eval.alternatives.registry import ALL, BASE_K_SHOT, FAMILIES, AlternativesRun, choose, fit_alternatives, for_eval
from tunerail.eval.alternatives.shape import answer_shape, is_summary_like, values_are_spans

__all__ = [
    "ALL",
    "BASE_K_SHOT",
    "FAMILIES",
    "Alternative",
    "AlternativesRun",
    "FitData",
    "Fitted",
    "answer_shape",
    "choose",
    "fit_alternatives",
    "fit_hosted",
    "fit_one",
    "for_eval",
    "hosted_messages",
    "is_summary_like",
    "local_budget",
    "slow_findings",
    "values_are_spans",
]
