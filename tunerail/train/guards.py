"""Runtime guardrails: early stopping, divergence and overfitting, as small pure functions.

Each guard looks at numbers (losses, the evaluation history) and returns a ``Finding`` or a
decision; the recipe acts on it. Their state is plain data so it goes into the checkpoint and a
resumed run decides exactly as an uninterrupted one would.

Guard names (switch off with ``train.guards: {name: false}``; every switch-off is recorded):
``validation``, ``early_stopping`` (also ``train.early_stopping``), ``divergence``,
``overfitting``, ``budget``, ``lint``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from tunerail.findings import Finding, Severity
from tunerail.names import GUARDS


def disabled_guards(train_config: Any) -> list[str]:
    """Guardrails switched off in the config (recorded in the run).

    Unknown names never get here: ``train.guards`` is checked against ``tunerail.names.GUARDS``
    when the config is loaded.
    """
    off = [name for name in GUARDS if train_config.guards.get(name) is False]
    if not train_config.early_stopping and "early_stopping" not in off:
        off.append("early_stopping")
    return sorted(off)


@dataclass
class EarlyStopping:
    """Stop after ``patience`` evaluations without a new best (``min_delta`` beyond it).

    Lower is better (validation loss) unless ``higher_is_better`` (a task metric,
    ``train.select_by: metric``); a tie is not an improvement, so the earliest best step is kept.
    """

    patience: int
    min_delta: float = 0.0
    best: float = math.inf
    best_step: int = -1
    bad_evals: int = 0
    higher_is_better: bool = False

    def __post_init__(self) -> None:
        if self.higher_is_better and self.best == math.inf:  # nothing seen yet
            self.best = -math.inf

    def update(self, value: float, step: int) -> bool:
        """Record one evaluation; True when it is a new best (save it)."""
        better = value > self.best + self.min_delta if self.higher_is_better else value < self.best - self.min_delta
        if better:
            self.best, self.best_step, self.bad_evals = value, step, 0
            return True
        self.bad_evals += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_evals >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DivergenceGuard:
    """NaN/inf, a loss far above the running median of recent steps, or a smoothed loss that climbs, means the run diverged.

    Parameters
    ----------
    spike_factor : float, default 5
        A step loss above ``spike_factor x`` the median of the last ``window`` steps (and at
        least ``min_gap`` above it) counts as a spike. One hard batch rarely exceeds 3x.
    spike_patience : int, default 3
        Spikes in a row before the run is called diverged: a hard batch (or a batch of long
        replay rows) recovers at the next step, a diverging run does not. NaN/inf stops at once.
    window : int, default 20
    warmup_steps : int, default 5
        No spike test before this many losses are seen (early losses move fast).
    rise_factor : float, default 2
        A sustained climb: the smoothed loss (median of the last ``window`` steps) rising above
        ``rise_factor x`` its lowest level (a single hard batch cannot move a median; a learning
        rate that is too high does).
    rise_min_steps : int, default 10
        The rise test starts, and the lowest level is recorded, only once the median covers this
        many steps. A median of three or four batches is noise, not a level: with 30 % foreign rows
        a healthy run's median went 1.95 -> 3.98 by step 4 and was stopped (issue 25).
    uniform_loss : float or None, default None
        The loss of guessing uniformly over the vocabulary, ``ln(vocab_size)`` (the recipe sets it).
        A median of the last three losses above ``blowup_factor x`` that is worse than knowing
        nothing; noise in a healthy run never gets there, so this test needs no long window and
        catches a run that diverges from its first steps (lr x100: 10.8 -> 21.5 by step 4).
    """

    spike_factor: float = 5.0
    window: int = 20
    min_gap: float = 1.0
    warmup_steps: int = 5
    rise_factor: float = 2.0
    spike_patience: int = 3
    rise_min_steps: int = 10
    uniform_loss: float | None = None
    blowup_factor: float = 1.5
    best_median: dict[str, float] = field(default_factory=dict)
    recent: dict[str, list[float]] = field(default_factory=dict)
    spikes: dict[str, int] = field(default_factory=dict)

    def check(self, loss: float, step: int, lr: float, stream: str = "task") -> Finding | None:
        """Test one step's loss. ``stream`` keeps separate medians for batches of different kinds
        (e.g. ``"replay"`` rows, whose long general answers have a much higher loss than labels):
        comparing one kind against the other's median would call a normal batch a spike."""
        if not math.isfinite(loss):
            return _divergence(step, lr, f"training loss is {loss} at step {step}", {"loss": str(loss)})
        recent = self.recent.setdefault(stream, [])
        if len(recent) >= self.warmup_steps:
            median = statistics.median(recent[-self.window :])
            if loss > self.spike_factor * median and loss - median > self.min_gap:
                # One hard batch recovers at the next step; a diverging run stays up.
                self.spikes[stream] = self.spikes.get(stream, 0) + 1
                if self.spikes[stream] >= self.spike_patience:
                    return _divergence(
                        step,
                        lr,
                        f"training loss spiked to {loss:.3f} at step {step} "
                        f"({self.spikes[stream]} steps in a row), {loss / median:.1f}x the running "
                        f"median {median:.3f}",
                        {"loss": loss, "median": median, "stream": stream},
                    )
                return None
        self.spikes[stream] = 0
        recent = self.recent[stream] = (recent + [loss])[-self.window :]
        if self.uniform_loss is not None and len(recent) >= 3:
            level = statistics.median(recent[-3:])
            if level > self.blowup_factor * self.uniform_loss:
                return _divergence(
                    step,
                    lr,
                    f"the median of the last 3 training losses is {level:.3f} at step {step}, {level / self.uniform_loss:.1f}x "
                    f"the loss of guessing uniformly over the vocabulary ({self.uniform_loss:.3f})",
                    {"loss": loss, "median": level, "uniform_loss": self.uniform_loss, "stream": stream},
                )
        if len(recent) < min(self.rise_min_steps, self.window):
            return None  # the warm-up's first batches are too few to give a level
        median = statistics.median(recent)
        best = self.best_median.get(stream, math.inf)
        if median > self.rise_factor * best and median - best > self.min_gap:
            return _divergence(
                step,
                lr,
                f"the running median of the last {len(recent)} training losses climbed to {median:.3f} at step "
                f"{step}, {median / best:.1f}x its lowest level {best:.3f}",
                {"loss": loss, "median": median, "best_median": best, "stream": stream},
            )
        self.best_median[stream] = min(best, median)
        return None

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)


def _divergence(step: int, lr: float, what: str, details: dict[str, Any]) -> Finding:
    return Finding(
        check="train.divergence",
        code="TRN020",
        severity=Severity.ERROR,
        message=f"the run diverged: {what}; training stopped and the last good checkpoint was kept",
        fix=(
            f"lower train.learning_rate (e.g. {lr / 10:.1e} instead of {lr:.1e}), keep train.max_grad_norm at 1.0 "
            "and raise train.warmup_ratio; check the data for very long or garbled rows (`tunerail doctor`)"
        ),
        details={"step": step, "learning_rate": lr, **details},
    )


def check_overfitting(history: Sequence[dict[str, Any]], *, min_rise: float = 0.01, evals: int = 2) -> Finding | None:
    """Validation loss rising for ``evals`` evaluations while training loss falls: overfitting.

    ``history`` rows need ``step``, ``val_loss`` and ``train_loss`` (the mean since the previous
    evaluation). The finding names the step where validation loss was lowest (where the run
    started to overfit).
    """
    rows = [h for h in history if h.get("val_loss") is not None and h.get("train_loss") is not None]
    if len(rows) < evals + 1:
        return None
    tail = rows[-(evals + 1) :]
    val_up = all(b["val_loss"] > a["val_loss"] for a, b in zip(tail, tail[1:]))
    train_down = all(b["train_loss"] < a["train_loss"] for a, b in zip(tail, tail[1:]))
    best = min(rows, key=lambda h: h["val_loss"])
    if not (val_up and train_down and tail[-1]["val_loss"] - best["val_loss"] >= min_rise):
        return None
    return Finding(
        check="train.overfitting",
        code="TRN021",
        severity=Severity.WARNING,
        message=(
            f"overfitting from step {best['step']}: validation loss rose {best['val_loss']:.4f} -> "
            f"{tail[-1]['val_loss']:.4f} (step {tail[-1]['step']}) while training loss fell "
            f"{tail[0]['train_loss']:.4f} -> {tail[-1]['train_loss']:.4f}"
        ),
        fix="keep early stopping on (the best checkpoint is restored); train fewer epochs, add data, "
        "or lower the LoRA rank / learning rate",
        details={"since_step": best["step"], "flagged_at_step": tail[-1]["step"], "best_val_loss": best["val_loss"]},
    )
