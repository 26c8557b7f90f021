"""What select hands on: each candidate's measurements (:class:`CandidateResult`) and the decision (:class:`SelectResult`, select.json)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunerail.findings import Finding


@dataclass
class CandidateResult:
    """Everything measured for one candidate (``measures`` is what ``candidates/<slug>.json`` holds)."""

    name: str
    resolved: str
    licence: dict[str, Any]
    params: int
    scores: dict[str, dict[str, Any]]  # zero_shot / k_shot -> Estimate dict of the task metric
    score: dict[str, Any]  # the better setting's Estimate, with "setting"
    bits_per_byte: dict[str, Any]  # Estimate dict on the sample's reference answers
    bits_per_byte_general: float | None  # on the forgetting suite
    tokenizer: dict[str, Any]
    resources: dict[str, Any]
    findings: list[Finding]
    eligible: bool = True
    blocked: list[str] = field(default_factory=list)
    seconds: float = 0.0
    resumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["findings"] = [f.to_dict() for f in self.findings]
        return out


@dataclass
class SelectResult:
    """What `tunerail select` prints and writes (``to_dict()`` is select.json)."""

    recommended: str | None
    reason: str
    decided_by: str
    ranking: list[str]
    candidates: list[CandidateResult]
    comparisons: dict[str, Any]
    findings: list[Finding]
    task: str
    metric: str
    sample: dict[str, Any]
    baselines: dict[str, dict[str, Any]]  # classification: cheap baselines on the same sample
    acknowledged: list[str]
    seconds: float
    select_json: str | None = None
    report_html: str | None = None

    @property
    def blocked(self) -> bool:
        return self.recommended is None

    def candidate(self, name: str) -> CandidateResult:
        return next(c for c in self.candidates if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        from tunerail import __version__

        out = dict(self.__dict__)
        out["candidates"] = [c.to_dict() for c in self.candidates]
        out["findings"] = [f.to_dict() for f in self.findings]
        out["version"] = __version__
        return out
