"""Cost before compute: tokens, steps, time and money from a measured probe, and a hard cap.

The estimate times a few real forward+backward passes on this hardware (no optimizer step, RNG
restored, so the run itself is unchanged) and scales by the token count of the whole run; the
cap is checked after every step and stops cleanly with a checkpoint.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tunerail.findings import Finding, Severity

# Forward-only evaluation costs about a third of a training step per token (no backward).
EVAL_COST_RATIO = 1 / 3


@dataclass
class Estimate:
    """What the run will (or did) take."""

    tokens: int  # padded training tokens processed (all epochs)
    steps: int
    seconds: float
    cost: float
    currency: str = "USD"
    seconds_per_step: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        mins = self.seconds / 60
        money = f", {self.cost:.2f} {self.currency}" if self.cost else ""
        return f"{self.tokens:,} tokens, {self.steps} steps, ~{mins:.1f} min{money}"


def estimate_run(*, seconds_per_token: float, train_tokens: int, steps: int, eval_tokens: int, evals: int,
                 price_per_hour: float, currency: str = "USD") -> Estimate:
    """Scale a measured seconds-per-token to the whole run (training plus evaluations)."""
    seconds = seconds_per_token * (train_tokens + EVAL_COST_RATIO * eval_tokens * evals)
    return Estimate(train_tokens, steps, seconds, seconds / 3600 * price_per_hour, currency,
                    seconds / steps if steps else None)


def cost_of(seconds: float, price_per_hour: float) -> float:
    return seconds / 3600 * price_per_hour


def over_budget(budget: Any, seconds: float) -> str | None:
    """Why the run must stop now (``budget.max_hours`` / ``budget.max_cost``), or None."""
    if budget.max_hours is not None and seconds / 3600 >= budget.max_hours:
        return f"wall time {seconds / 3600:.3f} h reached budget.max_hours {budget.max_hours:g} h"
    if budget.max_cost is not None and budget.price_per_hour > 0 and cost_of(seconds, budget.price_per_hour) >= budget.max_cost:
        return (f"cost {cost_of(seconds, budget.price_per_hour):.2f} {budget.currency} reached budget.max_cost "
                f"{budget.max_cost:g} {budget.currency}")
    return None


def check_estimate(estimate: Estimate, budget: Any) -> list[Finding]:
    """TRN010: the estimate exceeds a cap, so the run will stop early (say so before it starts)."""
    out: list[Finding] = []
    if budget.max_hours is not None and estimate.seconds / 3600 > budget.max_hours:
        share = budget.max_hours * 3600 / estimate.seconds
        out.append(Finding("budget.estimate", Severity.WARNING,
                           f"the run is estimated at {estimate.seconds / 3600:.2f} h, over budget.max_hours "
                           f"{budget.max_hours:g} h: it will stop after about {100 * share:.0f} % of its steps",
                           "raise budget.max_hours, train fewer epochs or fewer rows, or accept a budget stop (with a checkpoint)",
                           code="TRN010", details={"estimate_hours": estimate.seconds / 3600, "max_hours": budget.max_hours}))
    if budget.max_cost is not None and budget.price_per_hour > 0 and estimate.cost > budget.max_cost:
        out.append(Finding("budget.estimate", Severity.WARNING,
                           f"the run is estimated at {estimate.cost:.2f} {budget.currency}, over budget.max_cost "
                           f"{budget.max_cost:g}: it will stop early",
                           "raise budget.max_cost or train less", code="TRN010",
                           details={"estimate_cost": estimate.cost, "max_cost": budget.max_cost}))
    if budget.max_cost is not None and budget.price_per_hour == 0:
        out.append(Finding("budget.estimate", Severity.WARNING,
                           "budget.max_cost is set but budget.price_per_hour is 0, so the cost cap can never fire",
                           "set budget.price_per_hour to what an hour of this machine costs", code="TRN011"))
    return out
