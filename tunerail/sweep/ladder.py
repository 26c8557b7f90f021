"""Multi-fidelity search: successive halving over rungs of growing fidelity, planned against the share.

A share that fits about one full-length trial chooses nothing when it runs full-length trials.
Here rung 0 runs many settings short (``sweep.min_fraction`` of the training rows or steps),
keeps the best ``1/sweep.eta`` by the objective (all measured at the same fidelity), runs the
survivors ``eta`` times longer, and so on up to full length, where the winner runs last.

Why not Optuna's ``SuccessiveHalvingPruner``/``HyperbandPruner`` alone: they are asynchronous
(ASHA); with one worker the first trial is always promoted and runs to full length before a
second setting is tried, which is exactly what a small share cannot afford. So the rungs run
one after another here (Optuna still samples rung 0 with the study's sampler, through
``study.ask``/``study.tell``), and the share planner stays in charge: rung 0 grows only while
its next trial and the rest of the ladder fit, and every trial is checked to fit before it starts.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from tunerail.sweep.share import ShareMeter
from tunerail.sweep.trial import Fidelity, SweepState, Trial


KEPT_ATTR = "tunerail_rung_kept"  # study user attribute: rung -> trial numbers kept for the next rung


def fractions(min_fraction: float, eta: int) -> list[float]:
    """Rung fidelities: ``min_fraction x eta^k`` below 1, then 1 (full length)."""
    out, f = [], min_fraction
    while f < 1.0 - 1e-9:
        out.append(f)
        f *= eta
    return out + [1.0]


class Ladder:
    """Runs one worker's successive halving; ``after`` gets each finished trial (outputs, progress)."""

    def __init__(self, state: SweepState, study: Any, n_trials: int, after: Callable[[Any, Any], None]) -> None:
        self.state = state
        self.study = study
        self.n_trials = n_trials
        self.after = after
        sc = state.config.sweep
        self.kind = sc.fidelity
        self.eta = sc.eta
        self.rungs = fractions(sc.min_fraction, sc.eta)
        self.body = 0.0  # seconds a full-length trial spends training (steps and evaluations), the slowest measured

    @property
    def meter(self) -> ShareMeter:
        return self.state.meter

    def cost(self, fraction: float) -> float:
        """Planned seconds of one trial at ``fraction``: its fixed cost, plus the share of a full trial's body."""
        return self.meter.costs.trial_cost() + fraction * self.body

    def rest(self, n0: int) -> float:
        """Planned seconds of rung 1 when rung 0 has ``n0`` settings: rung 0 grows only while its survivors can climb once."""
        if len(self.rungs) < 2:
            return 0.0
        return max(1, n0 // self.eta) * self.cost(self.rungs[1])

    def run(self) -> None:
        rung0: list[Any] = []
        while len(rung0) < self.n_trials and self.meter.fits(self.cost(self.rungs[0])):
            if len(rung0) >= self.eta and not self.meter.fits(self.cost(self.rungs[0]) + self.rest(len(rung0) + 1)):
                break  # another setting now would leave no room to compare the survivors at more fidelity
            rung0.append(self._one(Fidelity(self.kind, self.rungs[0], 0), None, None))
        previous = rung0
        for k, f in enumerate(self.rungs[1:], start=1):
            keep = self.best(previous, max(1, len(previous) // self.eta))
            if not keep:
                return
            kept = dict(self.study.user_attrs.get(KEPT_ATTR, {}))
            kept[str(k - 1)] = [t.number for t in keep]  # recorded even when the next rung no longer fits the share
            self.study.set_user_attr(KEPT_ATTR, kept)
            previous = []
            for t in keep:
                if not self.meter.fits(self.cost(f)):
                    return
                previous.append(self._one(Fidelity(self.kind, f, k), t.user_attrs.get("params_all"), t.number))

    def _one(self, fidelity: Fidelity, params: dict[str, Any] | None, promoted_from: int | None) -> Any:
        """Ask, train, tell: one trial at ``fidelity`` (promoted settings keep their parameters)."""
        import optuna

        trial = self.study.ask()
        if promoted_from is not None:
            trial.set_user_attr("promoted_from", promoted_from)
        try:
            value = Trial(self.state, trial, fidelity).run(params)
            frozen = self.study.tell(trial, value)
        except optuna.TrialPruned:
            frozen = self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        seconds = frozen.user_attrs.get("train_seconds")
        if seconds is not None:
            self.body = max(self.body, float(seconds) / fidelity.fraction)
        self.after(self.study, frozen)
        return frozen

    def best(self, trials: list[Any], n: int) -> list[Any]:
        """The ``n`` best COMPLETE trials by value in the study's direction (a budget-cut one never climbs)."""
        done = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None and math.isfinite(t.value)]
        done = [t for t in done if not str(t.user_attrs.get("reason", "")).startswith("budget share")]
        return sorted(done, key=lambda t: t.value if self.state.direction == "minimize" else -t.value)[:n]


def summary(rows: list[dict[str, Any]], direction: str, kept: dict[str, list[int]]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Per rung: its fraction, the trials run and those kept for the next rung; and the best trial of the highest rung."""
    by_rung: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("fidelity"):
            by_rung.setdefault(int(r["fidelity"]["rung"]), []).append(r)
    promoted = {r.get("promoted_from") for r in rows}
    rungs = [
        {
            "rung": k,
            "fraction": by_rung[k][0]["fidelity"]["fraction"],
            "trials": [r["number"] for r in by_rung[k]],
            "kept": kept.get(str(k), [r["number"] for r in by_rung[k] if r["number"] in promoted]),
        }
        for k in sorted(by_rung)
    ]
    best = None
    for k in sorted(by_rung, reverse=True):
        done = [r for r in by_rung[k] if r["state"] == "COMPLETE" and r["value"] is not None]
        if done:
            best = (min if direction == "minimize" else max)(done, key=lambda r: r["value"])
            break
    return rungs, best
