"""What every alternative shares: its inputs, its description and its fitted result.

An alternative is a plain :class:`Alternative` (name, human label, library, how to ship it, and a
``fit`` function); the registry fits each one on train + validation and scores its predictions for
the test prompts with the task metric, exactly as the LLMs are scored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

FORMAT = 1  # of a cached Fitted dict; bump when its fields change


@dataclass
class FitData:
    """Rows an alternative may learn from (train + validation, never test) and the prompts it answers.

    ``train_labels``/``validation_labels`` are set for classification (else the answers are the text).
    Validation rows are kept apart so an alternative can pick a setting on them before refitting on both.
    """

    task: str
    train_prompts: list[str]
    train_answers: list[str]
    validation_prompts: list[str]
    validation_answers: list[str]
    test_prompts: list[str]
    embedding_model: str = "bundled:minilm"
    seed: int = 13
    time_budget_s: float | None = None  # CPU seconds left of the local alternatives' budget (``budget.py``); None: no limit

    @property
    def fit_prompts(self) -> list[str]:
        return self.train_prompts + self.validation_prompts

    @property
    def fit_answers(self) -> list[str]:
        return self.train_answers + self.validation_answers


FitFn = Callable[[FitData], tuple[list[str], dict[str, Any]]]


@dataclass(frozen=True)
class Alternative:
    """One thing a practitioner would ship instead of a fine-tuned LLM.

    ``fit(data)`` returns (one answer per test prompt in the task's own answer format, details);
    ``version`` is part of the cache key: bump it when the fit changes what it predicts.
    """

    name: str
    label: str
    library: str
    ship: str  # how to ship it, for the verdict's fix
    fit: FitFn
    version: int = 1
    budgeted: bool = False  # stops within ``FitData.time_budget_s``; fitted after the others so it gets what they left


@dataclass
class Fitted:
    """One alternative's test predictions, or the error that stopped it (never silently dropped)."""

    name: str
    label: str
    library: str
    predictions: list[str]
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    ship: str = ""
    kind: str = "cheap"  # "cheap": fitted here; "hosted": a prompted model behind an endpoint (``hosted.py``)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **self.__dict__}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Fitted":
        return cls(**{k: v for k, v in d.items() if k != "format"})


def fit_one(alt: Alternative, data: FitData) -> Fitted:
    """Fit ``alt``; an exception becomes a Fitted with ``error`` set (reported, never dropped)."""
    t = time.perf_counter()
    try:
        predictions, details = alt.fit(data)
    except Exception as exc:  # any library failure: the verdict warns, the other alternatives still count
        return Fitted(alt.name, alt.label, alt.library, [], time.perf_counter() - t, {}, f"{type(exc).__name__}: {exc}", alt.ship)
    if len(predictions) != len(data.test_prompts):
        msg = f"returned {len(predictions)} predictions for {len(data.test_prompts)} test prompts"
        return Fitted(alt.name, alt.label, alt.library, [], time.perf_counter() - t, details, msg, alt.ship)
    return Fitted(alt.name, alt.label, alt.library, [str(p) for p in predictions], time.perf_counter() - t, details, None, alt.ship)
