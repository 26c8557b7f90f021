"""Sections ``criteria`` and ``budget``: what counts as success, fixed before training, and what the run may cost."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunerail.config.base import _Section


class HumanCriteria(_Section):
    min_win_rate: float | None = Field(
        None,
        ge=0,
        le=1,
        description=("The tuned model's win rate over the other system must reach this (Wilson CI lower bound, ties excluded)."),
    )
    min_alpha: float | None = Field(
        0.667,
        ge=-1,
        le=1,
        description=("Krippendorff's alpha on the preference must reach this (0.667: Krippendorff's lowest acceptable)."),
    )
    min_items: int = Field(40, ge=1, description="Reviewed items needed before the human criteria can pass.")


class CriteriaConfig(_Section):
    metric: str | None = Field(
        None,
        description=(
            "Main metric the verdict is judged on; default by task: classification accuracy, generation/chat "
            "rougeL, extraction field_f1. Checked against the task when the config loads."
        ),
    )
    threshold: float | None = Field(
        None,
        description=(
            "The fine-tuned model must reach at least this value on the test set (its 95 % CI lower bound with "
            "decision: ci). A config file needs threshold or min_improvement."
        ),
    )
    min_improvement: float | None = Field(
        None,
        description=("Minimum paired gain, in metric units, over the baseline chosen by `baseline` (CI lower bound with decision: ci)."),
    )
    margin: float = Field(
        0.05,
        gt=0,
        le=1,
        description=(
            "Precision you need on the main metric: the test set must give a 95 % CI half-width narrower than this, "
            "as a share of the metric's range (bleu and chrf run 0-100: 0.05 is 5 points)."
        ),
    )
    max_forgetting: float = Field(
        0.10, ge=0, le=1, description=("Largest relative drop allowed on the general-capability suite (0.10 = 10 %).")
    )
    per_class_floor: float | None = Field(None, description="Every class must reach at least this recall (classification).")
    decision: Literal["ci", "point"] = Field(
        "ci",
        description=(
            "ci: a threshold or improvement passes only when the 95 % CI lower bound clears it (default); "
            "point: the point estimate decides (recorded in the report)."
        ),
    )
    baseline: Literal["strongest", "base"] = Field(
        "strongest",
        description=(
            "What min_improvement is measured against: the strongest baseline tunerail computes (base model "
            "scored fairly, k-shot, cheap classifiers, nearest neighbour) or only the base model."
        ),
    )
    human: HumanCriteria | None = Field(None, description="Criteria on the human review (`tunerail review`); none = not required.")


class BudgetConfig(_Section):
    max_cost: float | None = Field(None, ge=0, description="Stop training cleanly (with a checkpoint) beyond this cost.")
    max_hours: float | None = Field(None, gt=0, description="Stop training cleanly (with a checkpoint) beyond this wall time.")
    price_per_hour: float = Field(0.0, ge=0, description="What an hour of this hardware costs, for the cost estimate.")
    currency: str = Field("USD", description="Currency of price_per_hour and max_cost.")
    search_share: float = Field(
        0.2,
        gt=0,
        lt=1,
        description=("Share of max_hours the hyperparameter sweep may spend (0.2: the usual 20-25 % advice), enforced inside trials."),
    )
