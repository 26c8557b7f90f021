"""The sweep's share of the budget: every second a worker spends is charged, nothing starts that would not fit.

Optuna's own ``timeout`` is only checked between trials, so one long trial could spend the
whole budget. Here each worker charges its whole wall time, from entering ``sweep()`` to its
last output written (setup, trials, the time between trials, the report), to the study (a study
user attribute per worker, so workers on other machines see it). Before each unit of work, a
training step, an evaluation, a new trial, the worker asks whether that unit *and* what it
would cost to stop right after it (the cut's evaluation and checkpoint, the trial's finish,
the outputs) still fit in ``budget.search_share x budget.max_hours``, at the slowest cost of
each kind measured so far, times ``SAFETY``, and leave ``headroom`` of the share untouched. If
not, it stops there: the trial is cut and counted (state COMPLETE, reason ``budget``), or no new
trial starts.

The headroom is for what no measured cost foresees: on a shared machine a burst of other work can
make the very last unit slower than 1.25 x the slowest seen (a CI run beside the whole test suite
overran a 150 s share by 1.07 s that way).

The one thing that cannot be measured before it happens is a worker's first setup (loading
the model, tokenizing, the first evaluation); when that alone overruns, ``exceeded`` says so.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tunerail.errors import ConfigError, Problem

SECONDS_ATTR = "tunerail_seconds"  # trial user attribute: wall seconds this trial has spent
WORKER_PREFIX = "tunerail_worker_seconds:"  # study user attribute per worker: every second it spent
SAFETY = 1.25  # each unit is assumed 25 % slower than the slowest one of its kind measured
HEADROOM_SHARE = 0.02  # of the share kept free of planned work, for jitter no measured cost foresees ...
HEADROOM_MIN_S = 2.0  # ... and at least this (a one-second burst on a small share), but never over a tenth of the share
REFRESH = 1.0  # seconds between reads of the other workers' charges inside a trial


def allowed_seconds(budget: Any) -> float:
    """``search_share x max_hours`` in seconds; a sweep needs a time budget to have a share of."""
    if budget.max_hours is None:
        raise ConfigError(
            Problem(
                "the sweep spends a share of budget.max_hours, which is not set",
                field="budget.max_hours",
                fix="set budget.max_hours (the sweep gets budget.search_share of it, default 0.2)",
            )
        )
    return budget.search_share * budget.max_hours * 3600


@dataclass
class Costs:
    """The slowest cost of each unit measured so far in this worker (seconds); None until measured.

    The slowest, not a recent average: on a shared machine a step measured at 0.1 s can take 2 s
    the next moment (another process's burst), and a reserve planned from the quiet steps would not
    cover it; whatever this machine has done once, the plan assumes it can do again. A trial's
    first step (lazy allocation, cold caches) is kept apart (``first_step``) so one warm-up does not
    set the pace for every later step.
    """

    setup: float | None = None  # trial start to training ready (a reused base model)
    first_setup: float | None = None  # the same for a trial that loaded the base model (imports, tokenizing)
    first_step: float | None = None  # a trial's first optimizer step
    step: float | None = None  # any later optimizer step
    eval: float | None = None  # one evaluation with its checkpoint
    tail: float | None = None  # end of training to the next trial's start (finish, release, Optuna, outputs)
    outputs: float | None = None  # writing sweep.json, best.yaml and report.html
    KINDS = ("setup", "first_setup", "first_step", "step", "eval", "tail", "outputs")

    def see(self, kind: str, seconds: float) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown cost {kind!r}")
        setattr(self, kind, max(seconds, getattr(self, kind) or 0.0))

    def measured(self) -> dict[str, float | None]:
        return {k: None if getattr(self, k) is None else round(getattr(self, k), 3) for k in self.KINDS}

    def stop_cost(self) -> float:
        """What ending a trial now still costs: its tail (which writes the outputs once), then the final outputs.

        Before a tail was measured (the first trial), twice an evaluation with its checkpoint
        stands in for the finish (it copies and stores that checkpoint), plus the outputs the
        tail writes; the outputs are measured once before the first trial.
        """
        outputs = self.outputs or 0.0
        tail = self.tail if self.tail is not None else 2 * (self.eval or 0.0) + outputs
        return tail + outputs

    def step_cost(self) -> float:
        """One more step; before one was measured, a first step, else an evaluation (a forward pass over validation)."""
        for known in (self.step, self.first_step, self.eval):
            if known is not None:
                return known
        return 0.0

    def trial_cost(self) -> float:
        """The least a new trial costs: setup, step-0 evaluation, one step, its evaluation, the stop."""
        setup = self.setup if self.setup is not None else (self.first_setup or 0.0)
        first = self.first_step if self.first_step is not None else self.step_cost()
        return setup + first + 2 * (self.eval or 0.0) + self.stop_cost()


@dataclass
class ShareMeter:
    """Seconds spent by the whole study (all workers, each from its first second) against the share."""

    study: Any
    allowed: float
    worker: str
    start: float = field(default_factory=time.perf_counter)
    key: str = ""
    costs: Costs = field(default_factory=Costs)
    _others: float = 0.0
    _read_at: float = float("-inf")

    def __post_init__(self) -> None:
        self.key = self.key or f"{WORKER_PREFIX}{self.worker}:{uuid.uuid4().hex[:8]}"

    @property
    def mine(self) -> float:
        return time.perf_counter() - self.start

    def publish(self) -> None:
        """Write this worker's seconds so far to the study (other workers read them)."""
        self.study.set_user_attr(self.key, round(self.mine, 3))

    def others(self, *, fresh: bool = True) -> float:
        now = time.perf_counter()
        if fresh or now - self._read_at >= REFRESH:
            attrs = self.study.user_attrs
            self._others = sum(float(v) for k, v in attrs.items() if k.startswith(WORKER_PREFIX) and k != self.key)
            self._read_at = now
        return self._others

    def spent(self, *, fresh: bool = True) -> float:
        """Seconds every worker has charged so far, this one up to now."""
        return self.others(fresh=fresh) + self.mine

    def left(self, *, fresh: bool = True) -> float:
        return self.allowed - self.spent(fresh=fresh)

    @property
    def headroom(self) -> float:
        """Seconds of the share no plan may use (see the module docstring)."""
        return min(max(HEADROOM_MIN_S, HEADROOM_SHARE * self.allowed), 0.1 * self.allowed)

    def fits(self, seconds: float, *, fresh: bool = True) -> bool:
        """Whether ``seconds`` more (at the measured cost, before the safety margin) stay within the share less its headroom."""
        return self.spent(fresh=fresh) + SAFETY * seconds <= self.allowed - self.headroom


def study_spent(study: Any) -> float:
    """Seconds every worker of ``study`` charged (for the report)."""
    return sum(float(v) for k, v in study.user_attrs.items() if k.startswith(WORKER_PREFIX))
