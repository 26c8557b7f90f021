"""The sweep's share of the budget, enforced inside trials from the measured step time.

Optuna's own ``timeout`` is only checked between trials, so one long trial could spend the
whole budget. Here every trial writes its wall seconds to the study (a trial user attribute,
so workers on other machines see it) at each evaluation, and before training on it asks: does
the next evaluation interval, at the slowest interval measured so far, still fit in what is
left of ``budget.search_share x budget.max_hours``, counting every worker's trials? If not,
the trial is cut at this evaluation and counted (state COMPLETE, reason ``budget``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tunerail.errors import ConfigError, Problem

SECONDS_ATTR = "tunerail_seconds"  # trial user attribute: wall seconds this trial has spent
SETUP_ATTR = "tunerail_setup_seconds:"  # study user attribute prefix: one worker's shared setup time
SAFETY = 1.25  # the next interval is assumed 25 % slower than the slowest one measured


def allowed_seconds(budget: Any) -> float:
    """``search_share x max_hours`` in seconds; a sweep needs a time budget to have a share of."""
    if budget.max_hours is None:
        raise ConfigError(Problem("the sweep spends a share of budget.max_hours, which is not set", field="budget.max_hours",
                                  fix="set budget.max_hours (the sweep gets budget.search_share of it, default 0.2)"))
    return budget.search_share * budget.max_hours * 3600


@dataclass
class ShareMeter:
    """Seconds spent by the whole study (all workers) against the allowed share."""

    study: Any
    allowed: float
    worker: str
    setup_seconds: float = 0.0
    _cache: tuple[float, float] = field(default=(0.0, -1.0), repr=False)

    def record_setup(self, seconds: float) -> None:
        self.setup_seconds = seconds
        self.study.set_user_attr(SETUP_ATTR + self.worker, round(seconds, 3))

    def spent(self, *, exclude: int | None = None) -> float:
        """Seconds every trial and every worker's setup have used so far (from the storage)."""
        total = sum(float(v) for k, v in self.study.user_attrs.items() if k.startswith(SETUP_ATTR))
        for t in self.study.get_trials(deepcopy=False):
            if t.number != exclude:
                total += float(t.user_attrs.get(SECONDS_ATTR, 0.0))
        return total

    def left(self, *, exclude: int | None = None) -> float:
        return self.allowed - self.spent(exclude=exclude)


@dataclass
class TrialClock:
    """One trial's wall time and the slowest evaluation interval it has measured."""

    meter: ShareMeter
    trial: Any
    start: float = field(default_factory=time.perf_counter)
    last: float = field(default_factory=time.perf_counter)
    worst_interval: float = 0.0

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def tick(self) -> None:
        """At an evaluation: publish this trial's seconds, remember the interval just measured."""
        now = time.perf_counter()
        self.worst_interval = max(self.worst_interval, now - self.last)
        self.last = now
        self.trial.set_user_attr(SECONDS_ATTR, round(self.seconds, 3))

    def next_interval_fits(self) -> bool:
        others = self.meter.spent(exclude=self.trial.number)
        return others + self.seconds + SAFETY * self.worst_interval <= self.meter.allowed

    def close(self) -> None:
        self.trial.set_user_attr(SECONDS_ATTR, round(self.seconds, 3))
