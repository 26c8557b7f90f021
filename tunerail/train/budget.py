"""Cost before compute: tokens, steps, time and money from measured warm-up passes, and a hard cap.

The estimate times a few real forward+backward passes on this hardware (no optimizer update, RNG
restored, so the run itself is unchanged), takes the median seconds per token over batches of
the run's typical sizes, adds the measured optimizer step and the measured cost of one
evaluation with its checkpoint, and sums over the run's real batch sizes. During training the
ratio of measured to estimated time of the work done so far rescales the rest: the ETA and the
budget check follow the running rate, not the probe.

Measured on a quiet machine, "training time" is the recipe's ``actual.seconds``: the training loop
from step 1 to the end, evaluations and checkpoints inside it included (model loading, data
preparation and the step-0 evaluation are not).

``probe_rate``, ``measure_rate`` and ``estimate_run`` take plain callables and numbers (a
:class:`RunPlan`) so the recipe's probe and other steps use them without the recipe's state.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from tunerail.findings import Finding, Severity
from tunerail.io import write_atomic

# Forward-only evaluation costs about a third of a training step per token (no backward); used only
# when the evaluation was not timed.
EVAL_COST_RATIO = 1 / 3


@dataclass
class Rate:
    """Seconds of one forward+backward pass: ``overhead + per_token x tokens``, plus an optimizer step."""

    per_token: float
    overhead: float = 0.0
    optimizer_step: float = 0.0

    def micro_batch(self, tokens: float) -> float:
        return self.overhead + self.per_token * tokens


def fit_rate(samples: Sequence[tuple[float, float]]) -> Rate:
    """Seconds per token from (tokens, seconds) samples: the median of the per-sample rates.

    The median, not a mean or a least-squares line: on a shared machine one pass in a few takes
    2-4x the others, and a fitted intercept swings with it. Warm-up passes are excluded upstream.
    """
    rates = sorted(s / t for t, s in samples if t > 0)
    if not rates:
        return Rate(0.0)
    mid = len(rates) // 2
    return Rate(rates[mid] if len(rates) % 2 else (rates[mid - 1] + rates[mid]) / 2)


def measure_rate(run_once: Callable[[Any], float], items: Iterable[Any], *, warmup: int = 1) -> Rate:
    """Time ``run_once(item)`` (it returns the item's token count) and fit a :class:`Rate`.

    The first ``warmup`` calls are run but not timed (kernel selection, allocator and autograd
    warm-up make them several times slower than the steady state).
    """
    samples: list[tuple[float, float]] = []
    for i, item in enumerate(items):
        start = time.perf_counter()
        tokens = run_once(item)
        seconds = time.perf_counter() - start
        if i >= warmup:
            samples.append((float(tokens), seconds))
    return fit_rate(samples)


@dataclass
class Estimate:
    """What the run will (or did) take, and the measured terms it was built from."""

    tokens: int  # padded training tokens processed (all epochs)
    steps: int
    seconds: float
    cost: float
    currency: str = "USD"
    seconds_per_step: float | None = None
    per_token: float | None = None
    overhead: float | None = None  # per micro-batch
    optimizer_step: float | None = None
    eval_seconds: float | None = None  # one evaluation with its checkpoint
    evals: int | None = None
    micro_per_step: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        mins = self.seconds / 60
        money = f", {self.cost:.2f} {self.currency}" if self.cost else ""
        return f"{self.tokens:,} tokens, {self.steps} steps, ~{mins:.1f} min{money}"

    def work_seconds(self, steps: int, tokens: float, evals: int) -> float:
        """Estimated seconds of ``steps`` optimizer steps over ``tokens`` plus ``evals`` evaluations."""
        if self.per_token is None:  # an estimate from an older run: proportional to tokens
            return self.seconds * (tokens / self.tokens if self.tokens else 0.0)
        return (
            steps * (self.micro_per_step * (self.overhead or 0.0) + (self.optimizer_step or 0.0))
            + tokens * self.per_token
            + evals * (self.eval_seconds or 0.0)
        )

    def projected(self, elapsed: float, steps: int, tokens: float, evals: int) -> float:
        """Total seconds of the run at the measured running rate (the estimate rescaled by what was seen)."""
        done = self.work_seconds(steps, tokens, evals)
        if done <= 0 or elapsed <= 0:
            return self.seconds
        return self.seconds * elapsed / done


@dataclass(frozen=True)
class Work:
    """An amount of training work: the seconds it took, optimizer steps, padded tokens and evaluations.

    ``eval_seconds``: the evaluations' own timed seconds, when known (inside a warm-up window).
    """

    seconds: float
    steps: int
    tokens: float
    evals: int
    eval_seconds: float | None = None


def estimate_from_steps(probe: Estimate, window: Work, done: Work) -> Estimate:
    """The run's estimate from a few measured training steps (the "warm-up ``window``"), ``done`` so far.

    ``probe`` (from :func:`estimate_run`) gives the shape of the work (tokens per step, evaluations);
    the window's measured seconds, less its evaluations at their timed cost, give the real
    seconds per unit of training work. The rest of the run is that rate times what is left.
    """
    from dataclasses import replace

    one_eval = probe.eval_seconds or 0.0
    if window.evals and window.eval_seconds is not None:  # evaluations timed inside the window beat the step-0 one
        one_eval = window.eval_seconds / window.evals
    evals_cost = window.evals * one_eval
    predicted = probe.work_seconds(window.steps, window.tokens, 0)
    measured = window.seconds - evals_cost
    ratio = measured / predicted if predicted > 0 and measured > 0 else 1.0
    left_steps, left_tokens = max(0, probe.steps - done.steps), max(0.0, probe.tokens - done.tokens)
    left_evals = max(0, (probe.evals or 0) - done.evals)
    seconds = done.seconds + ratio * probe.work_seconds(left_steps, left_tokens, 0) + left_evals * one_eval

    def scale(v: float | None) -> float | None:
        return None if v is None else v * ratio

    return replace(
        probe,
        seconds=seconds,
        cost=cost_of(seconds, 0.0) if not probe.cost else probe.cost * seconds / probe.seconds,
        seconds_per_step=seconds / probe.steps if probe.steps else None,
        per_token=scale(probe.per_token),
        overhead=scale(probe.overhead),
        optimizer_step=scale(probe.optimizer_step),
        eval_seconds=one_eval,
    )


def with_eval_seconds(estimate: Estimate, eval_seconds: float) -> Estimate:
    """The estimate with its evaluation term replaced by one timed evaluation."""
    from dataclasses import replace

    evals = estimate.evals or 0
    seconds = estimate.seconds - evals * (estimate.eval_seconds or 0.0) + evals * eval_seconds
    cost = estimate.cost * seconds / estimate.seconds if estimate.seconds else estimate.cost
    return replace(
        estimate,
        seconds=seconds,
        cost=cost,
        eval_seconds=eval_seconds,
        seconds_per_step=seconds / estimate.steps if estimate.steps else None,
    )


@dataclass(frozen=True)
class RunPlan:
    """The run's shape, known before step 1: what :func:`estimate_run` multiplies the measured rates by."""

    train_tokens: int  # padded tokens of every micro-batch of the run
    steps: int  # optimizer steps
    evals: int
    micro_batches: int | None = None  # forward+backward passes per process (default: one per step)
    eval_tokens: int = 0  # tokens of one evaluation (priced at EVAL_COST_RATIO when it was not timed)
    generate_tokens: int = 0  # of one evaluation, train.select_by: metric: prompts + answers generated (one forward each)


def estimate_run(
    plan: RunPlan, rate: Rate, *, eval_seconds: float | None = None, price_per_hour: float = 0.0, currency: str = "USD"
) -> Estimate:
    """Scale measured rates to the whole run: training passes, optimizer steps and evaluations.

    ``rate`` (from :func:`measure_rate` or :func:`probe_rate`) gives the per-token time, the per-pass
    overhead and the optimizer step; ``eval_seconds`` is one timed evaluation, else evaluations cost
    ``EVAL_COST_RATIO`` per token, the tokens a ``select_by: metric`` evaluation generates included.
    """
    steps = plan.steps
    micro = plan.micro_batches if plan.micro_batches is not None else steps
    untimed = plan.eval_tokens + plan.generate_tokens  # a lower bound for generation: decoding is latency-bound (step 0 times it)
    one_eval = eval_seconds if eval_seconds is not None else rate.per_token * EVAL_COST_RATIO * untimed
    seconds = micro * rate.overhead + steps * rate.optimizer_step + rate.per_token * plan.train_tokens + plan.evals * one_eval
    return Estimate(
        plan.train_tokens,
        steps,
        seconds,
        seconds / 3600 * price_per_hour,
        currency,
        seconds / steps if steps else None,
        rate.per_token,
        rate.overhead,
        rate.optimizer_step,
        one_eval,
        plan.evals,
        max(1, round(micro / steps)) if steps else 1,
    )


PROBE_WARMUP = 2  # untimed passes before the probe: the first two run 1.5-3x slower than the steady state


def probe_rate(one_pass: Callable[[int], int], batch_tokens: Sequence[int], passes: int, optimizer_step: Callable[[], float]) -> Rate:
    """Time ``passes`` forward+backward passes (``one_pass(batch index)``) over batches of typical sizes.

    A median batch warms up first (kernel choice, allocator; ``PROBE_WARMUP`` untimed passes), then
    sizes from the middle of the range (quartiles), where most of the run's batches are.
    ``optimizer_step`` times one optimizer step (it runs after the passes, on their gradients).
    """
    order = sorted(range(len(batch_tokens)), key=lambda b: batch_tokens[b])
    middle = [order[round((0.25 + 0.5 * (k + 0.5) / passes) * (len(order) - 1))] for k in range(passes)]
    picks = [order[len(order) // 2]] * PROBE_WARMUP + middle
    rate = measure_rate(one_pass, picks, warmup=PROBE_WARMUP)
    rate.optimizer_step = optimizer_step()
    return rate


def time_optimizer_step(trainable: Sequence[Any], *, lr: float, weight_decay: float, max_grad_norm: float) -> float:
    """Seconds of clip + AdamW step, timed on copies of ``trainable`` so the run's optimizer is untouched."""
    import torch

    copies = [p.detach().clone().requires_grad_(True) for p in trainable]
    for c, p in zip(copies, trainable):
        c.grad = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(c)
    opt = torch.optim.AdamW(copies, lr=lr, weight_decay=weight_decay)
    seconds = 0.0
    for i in range(3):  # the first step allocates the moment buffers
        start = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(copies, max_grad_norm)
        opt.step()
        if i:
            seconds += time.perf_counter() - start
    return seconds / 2


# The paid clock is written at most this often: a kill between checkpoints loses at most this many
# seconds of the time the budget and the cost count (the work itself is redone after a resume).
CLOCK_SECONDS = 1.0
CLOCK_FILE = "clock.json"


class RunClock:
    """Training seconds paid for across sessions, kept beside the resume checkpoints.

    A checkpoint records the training clock at its step; the steps a kill throws away after it
    were still paid for. The clock file is rewritten as training goes, so a resume can add that
    lost time back: ``budget.max_hours``/``max_cost`` and ``actual.seconds``/``cost`` are then
    cumulative over every session, and the history's ``seconds`` continue from that clock.
    """

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / CLOCK_FILE
        self._written = float("-inf")

    def tick(self, elapsed: float, step: int, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._written >= CLOCK_SECONDS:
            write_atomic(self.path, json.dumps({"elapsed": elapsed, "step": step}))
            self._written = now

    def lost_since(self, checkpoint_elapsed: float) -> float:
        """Seconds the previous session trained past the checkpoint it left (0: none, or no clock)."""
        try:
            paid = float(json.loads(self.path.read_text(encoding="utf-8"))["elapsed"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0
        return max(0.0, paid - checkpoint_elapsed)


def cost_of(seconds: float, price_per_hour: float) -> float:
    return seconds / 3600 * price_per_hour


def over_budget(budget: Any, seconds: float) -> str | None:
    """Why the run must stop now (``budget.max_hours`` / ``budget.max_cost``), or None."""
    if budget.max_hours is not None and seconds / 3600 >= budget.max_hours:
        return f"wall time {seconds / 3600:.3f} h reached budget.max_hours {budget.max_hours:g} h"
    if budget.max_cost is not None and budget.price_per_hour > 0 and cost_of(seconds, budget.price_per_hour) >= budget.max_cost:
        return (
            f"cost {cost_of(seconds, budget.price_per_hour):.2f} {budget.currency} reached budget.max_cost "
            f"{budget.max_cost:g} {budget.currency}"
        )
    return None


def check_estimate(estimate: Estimate, budget: Any, *, basis: str = "estimated") -> list[Finding]:
    """TRN010: the estimate exceeds a cap, so the run will stop early (say so before it starts).

    ``basis`` words the message: ``estimated`` (before step 1) or ``projected at the measured rate``
    (during training, from :meth:`Estimate.projected`).
    """
    out: list[Finding] = []
    if budget.max_hours is not None and estimate.seconds / 3600 > budget.max_hours:
        share = budget.max_hours * 3600 / estimate.seconds
        out.append(
            Finding(
                "budget.estimate",
                Severity.WARNING,
                f"the run is {basis} at {_duration(estimate.seconds)}, over budget.max_hours "
                f"{budget.max_hours:g} h: it will stop after about {100 * share:.0f} % of its steps",
                "raise budget.max_hours, train fewer epochs or fewer rows, or accept a budget stop (with a checkpoint)",
                code="TRN010",
                details={"estimate_hours": estimate.seconds / 3600, "max_hours": budget.max_hours, "basis": basis},
            )
        )
    if budget.max_cost is not None and budget.price_per_hour > 0 and estimate.cost > budget.max_cost:
        out.append(
            Finding(
                "budget.estimate",
                Severity.WARNING,
                f"the run is {basis} at {estimate.cost:.2f} {budget.currency}, over budget.max_cost "
                f"{budget.max_cost:g}: it will stop early",
                "raise budget.max_cost or train less",
                code="TRN010",
                details={"estimate_cost": estimate.cost, "max_cost": budget.max_cost, "basis": basis},
            )
        )
    if budget.max_cost is not None and budget.price_per_hour == 0 and basis == "estimated":
        out.append(
            Finding(
                "budget.estimate",
                Severity.WARNING,
                "budget.max_cost is set but budget.price_per_hour is 0, so the cost cap can never fire",
                "set budget.price_per_hour to what an hour of this machine costs",
                code="TRN011",
            )
        )
    return out


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"
