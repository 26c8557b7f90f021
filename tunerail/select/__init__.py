"""`tunerail select`: choose the base model on your own data, licence gated, before training."""

from tunerail.select.recipe import CandidateResult, SelectResult, resolve_candidates, select

__all__ = ["CandidateResult", "SelectResult", "resolve_candidates", "select"]
