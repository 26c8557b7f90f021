"""`tunerail sweep`: Optuna search over the training recipe, inside a share of the budget.

Each trial is a real ``tunerail train`` run (same recipe, every guardrail on) in this process:
the tokenized data and the loaded base model are reused, each trial gets a fresh LoRA adapter
that is removed afterwards. Per evaluation the trial reports validation loss to the pruner
(at a step counted in training examples seen, so trials with different batch sizes compare at
equal data) and checks the budget share (``share.py``). Divergence, a lint error or the pruner
end a trial as PRUNED with the reason recorded; a budget cut ends it as COMPLETE with its best
value and reason ``budget``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from tunerail.errors import GuardrailError, Problem, TunerailError
from tunerail.sweep import share as share_mod
from tunerail.sweep.space import Dimension, build_space, overlay
from tunerail.sweep.storage import default_url, masked, open_storage
from tunerail.sweep.ladder import KEPT_ATTR, Ladder, summary
from tunerail.sweep.trial import SweepState, Trial

OnTrial = Callable[[dict[str, Any]], None]
COUNTED = ("COMPLETE", "PRUNED")


@dataclass
class SweepResult:
    """What the sweep found; also ``out_dir/sweep.json``."""

    study: str
    storage: str  # password hidden
    objective: str
    direction: str
    best_params: dict[str, Any] | None
    best_value: float | None
    best_trial: int | None
    trials: list[dict[str, Any]]
    counts: dict[str, int]
    share: dict[str, Any]
    space: dict[str, Any]
    sampler: str
    pruner: str
    rungs: list[dict[str, Any]] = field(default_factory=list)  # multi-fidelity: per rung its fraction, trials and those kept
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)  # PEFT method -> trials, best value, seconds per step
    parent_run_id: str | None = None
    out_dir: Path | None = None
    paths: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["out_dir"] = str(self.out_dir) if self.out_dir else None
        return out


def _direction(config: Any) -> Literal["minimize", "maximize"]:
    if config.sweep.objective == "val_loss":
        return "minimize"
    from tunerail.eval.verdict import LOWER_IS_BETTER

    return "minimize" if config.criteria.metric in LOWER_IS_BETTER else "maximize"


def _sampler(name: str, seed: int | None, space: dict[str, Dimension]) -> Any:
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        grid = {}
        for n, d in space.items():
            if not d.searched:
                continue
            if d.choices is None and d.step is None:
                raise TunerailError(
                    Problem(
                        f"the grid sampler needs choices or a step for {n}",
                        field=f"sweep.space.{n}",
                        fix="give a list of values, or a range with step",
                    )
                )
            grid[n] = list(d.choices) if d.choices is not None else _steps(d)
        return optuna.samplers.GridSampler(grid, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _steps(d: Dimension) -> list[Any]:
    assert d.low is not None and d.high is not None and d.step is not None  # a stepped range (checked by the caller)
    values, v = [], d.low
    while v <= d.high + 1e-12:
        values.append(int(v) if d.integer else float(v))
        v += d.step
    return values


def _pruner(config: Any) -> Any:
    import optuna

    sc = config.sweep
    if sc.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=sc.startup_trials, n_warmup_steps=0)
    if sc.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if sc.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def study_name(config: Any, inputs: Sequence[Any], space: dict[str, Dimension]) -> str:
    """Project name + a hash of everything that makes trials comparable (not the trial count)."""
    from tunerail.io import hash_file

    cfg = config.model_dump(mode="json")
    payload = {
        "model": cfg["model"],
        "task": cfg["task"],
        "prompts": cfg["prompts"],
        "train": cfg["train"],
        "objective": cfg["sweep"]["objective"],
        "metric": cfg["criteria"]["metric"],
        "space": {n: d.describe() for n, d in sorted(space.items())},
        "share": cfg["budget"],
        "data": [hash_file(p) if isinstance(p, (str, Path)) and Path(p).is_file() else str(len(p or [])) for p in inputs],
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{config.project.name}-{digest}"


def _eval_interval(n_rows: int, config: Any, space: dict[str, Dimension]) -> int:
    """Examples between evaluations, a multiple of every batch size searched (aligned pruner steps)."""
    sizes = _values(space.get("batch_size"), config.train.batch_size)
    unit = math.lcm(*[int(b) * config.train.gradient_accumulation for b in sizes])
    per_epoch = max(1, n_rows // config.sweep.evals_per_epoch)
    return max(unit, unit * round(per_epoch / unit))


def _values(dim: Dimension | None, default: Any) -> list[Any]:
    if dim is None:
        return [default]
    if not dim.searched:
        return [dim.fixed]
    if dim.choices is not None:
        return list(dim.choices)
    if dim.integer and dim.low is not None and dim.high is not None:
        return list(range(int(dim.low), int(dim.high) + 1))
    return [default]


@dataclass(frozen=True)
class StudyTarget:
    """Which study a worker joins; workers on several machines pass the same ``storage`` and ``name``."""

    trials: int | None = None  # most trials in the study (all workers together); default sweep.trials
    storage: str | None = None  # Optuna storage URL; default sweep.storage or SQLite in out_dir
    name: str | None = None  # study name shared by workers; default sweep.study or derived from the inputs


def sweep(
    config: Any,
    *,
    train_data: str | Path | Sequence[Any],
    validation_data: str | Path | Sequence[Any],
    out_dir: str | Path,
    target: StudyTarget | None = None,
    store: Any = None,
    on_trial: OnTrial | None = None,
) -> SweepResult:
    """Search hyperparameters with Optuna within ``budget.search_share`` of ``budget.max_hours``.

    Parameters
    ----------
    config : TunerailConfig
        ``sweep`` (space, sampler, pruner, objective), ``budget`` (max_hours, search_share), ``train``.
    train_data, validation_data : split files (as written by ``tunerail split``) or records.
    out_dir : run folder: ``sweep.json``, ``best.yaml``, ``report.html``, ``sweep.db``, ``trials/``.
    target : the study's size, storage and name (``--trials``, ``--storage``, ``--study``); default: the config's.
    on_trial : called with each finished trial's row (for progress lines).

    Notes
    -----
    Workers on several machines run the same command with the same ``--storage`` and
    ``--study``: they share the sampler's history, the trial count and the budget share.
    """
    from tunerail.store import Store
    from tunerail.train.data import load_split

    begun = time.perf_counter()  # every second from here on is charged to the share
    _need_validation(validation_data)
    target = target or StudyTarget()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    space = build_space(config.train.method, config.train, config.sweep.space)
    url = target.storage or config.sweep.storage or default_url(out)
    name = target.name or config.sweep.study or study_name(config, [train_data, validation_data], space)
    direction = _direction(config)
    study_obj = _open_study(config, url, name, direction, space, shared=url != default_url(out))
    worker = f"{socket.gethostname()}:{os.getpid()}"
    meter = share_mod.ShareMeter(study_obj, share_mod.allowed_seconds(config.budget), worker, start=begun)
    meter.publish()
    store = store or Store(config.resolve(config.store.path) or config.store.path)
    trial_store = Store(Path(store.root).with_name(Path(store.root).name + "-sweep-trials"))  # trial adapters: not project checkpoints
    n_rows = len(load_split(train_data, config, "train"))
    state = SweepState(
        config=config,
        space=space,
        meter=meter,
        direction=direction,
        interval=_eval_interval(n_rows, config, space),
        worker=worker,
        out=out,
        trial_store=trial_store,
        parent=_parent_run(config, store.root, name, url, space),
        train_data=train_data,
        validation_data=validation_data,
        n_rows=n_rows,
    )
    return _Worker(state, study_obj, name, url, target.trials or config.sweep.trials, on_trial).run()


class _Worker:
    """This process's part of the study: trials while the next one fits the share, the outputs rewritten after each."""

    def __init__(self, state: SweepState, study: Any, name: str, url: str, n_trials: int, on_trial: OnTrial | None):
        self.state, self.study, self.name, self.url, self.n_trials, self.on_trial = state, study, name, url, n_trials, on_trial

    def run(self) -> SweepResult:
        state, study, config, meter = self.state, self.study, self.state.config, self.state.meter
        self.write()  # the outputs as of an empty study: a progress file from the start, and their cost measured before any stop is planned
        if config.sweep.fidelity != "full":
            Ladder(state, study, self.n_trials, self.report).run()
        elif self.more():
            _optimize(study, self.objective, self.n_trials, self.after_trial, self.on_trial)
        state.close_tail()
        parent = state.parent
        if parent is not None:
            best = _result(state, study, self.name, self.url).best_value
            used_share = meter.spent() / (config.budget.max_hours * 3600)
            parent.log_metrics({"best_value": float("nan") if best is None else best, "share_used": used_share}, step=0)
        result = self.write()  # the last second charged is the one that wrote these outputs (meter.mine read inside)
        if parent is not None:
            parent.log_dict(result.to_dict(), "sweep.json")
            parent.end("FINISHED")
        meter.publish()
        return result

    def objective(self, trial: Any) -> float:
        return Trial(self.state, trial).run()

    def more(self) -> bool:
        """A new trial must fit up to its first evaluation after a step, and its stop, at the costs measured so far."""
        return _counted(self.study) < self.n_trials and self.state.meter.fits(self.state.meter.costs.trial_cost())

    def write(self) -> SweepResult:
        """sweep.json, best.yaml, report.html as of now (after every trial: progress, and the cost measured)."""
        began = time.perf_counter()
        found = _result(self.state, self.study, self.name, self.url)
        _write_outputs(found, self.study, self.state.config, self.state.meter)
        self.state.meter.costs.see("outputs", time.perf_counter() - began)
        return found

    def report(self, study_: Any, frozen: Any) -> None:
        if self.on_trial is not None:
            self.on_trial(_trial_row(frozen))
        self.write()
        self.state.meter.publish()

    def after_trial(self, study_: Any, frozen: Any) -> None:
        self.report(study_, frozen)
        if not self.more():
            study_.stop()


def _need_validation(validation_data: Any) -> None:
    if validation_data is None:
        raise GuardrailError(
            Problem(
                "the sweep needs a validation split (its objective and pruning read it)",
                field="--validation",
                fix="pass --validation (written by `tunerail split`)",
            )
        )


def _open_study(
    config: Any, url: str, name: str, direction: Literal["minimize", "maximize"], space: dict[str, Dimension], *, shared: bool
) -> Any:
    """Create or load the study; workers on one shared study must not draw the same points (no seed)."""
    import optuna

    return optuna.create_study(
        storage=open_storage(url, heartbeat_seconds=config.sweep.heartbeat_seconds),
        study_name=name,
        direction=direction,
        load_if_exists=True,
        sampler=_sampler(config.sweep.sampler, None if shared else config.train.seed, space),
        pruner=_pruner(config),
    )


def _optimize(
    study: Any, objective: Callable[[Any], float], n_trials: int, after_trial: Callable[[Any, Any], None], on_trial: OnTrial | None
) -> None:
    """Optuna's loop over full-length trials; ``after_trial`` stops it when the next trial would not fit."""
    import optuna

    while True:
        try:
            study.optimize(objective, n_trials=n_trials, callbacks=[after_trial], catch=(), gc_after_trial=True)
            return
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as exc:
            # Another worker declared this worker's trial dead (its heartbeat came late) and queued a retry:
            # drop the trial and go on; it is FAIL in the study and counted once, through its retry.
            if not isinstance(exc, optuna.exceptions.UpdateFinishedTrialError) and "Cannot tell a FAIL trial" not in str(exc):
                raise
            if on_trial is not None:
                on_trial(
                    {
                        "number": None,
                        "state": "FAIL",
                        "value": None,
                        "reason": "this worker's trial was marked failed by another worker (late heartbeat); retried there",
                    }
                )


def _counted(study: Any) -> int:
    import optuna

    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)))


def _parent_run(config: Any, store_root: Path, name: str, url: str, space: dict[str, Dimension]) -> Any:
    from tunerail.train.tracking import start_tracking

    if not config.tracking.enabled:
        return None
    tracker = start_tracking(config, Path(store_root), run_id=None, run_name=f"sweep-{name}", main_process=True)
    tracker.set_tags({"tunerail.kind": "sweep", "tunerail.study": name, "tunerail.storage": masked(url)})
    tracker.log_params(
        {
            "sampler": config.sweep.sampler,
            "pruner": config.sweep.pruner,
            "objective": config.sweep.objective,
            "search_share": config.budget.search_share,
            "max_hours": config.budget.max_hours,
            **{f"space.{n}": json.dumps(d.describe()) for n, d in space.items()},
        }
    )
    return tracker


def _trial_row(t: Any) -> dict[str, Any]:
    retried_from = t.system_attrs.get("failed_trial")
    reason = t.user_attrs.get("reason")
    if t.state.name == "FAIL" and reason is None:
        reason = "worker lost (no heartbeat) or crashed; retried with the same parameters"
    return {
        "number": t.number,
        "state": t.state.name,
        "value": t.value,
        "params": t.user_attrs.get("params_all", t.params),
        "reason": reason,
        "seconds": t.user_attrs.get(share_mod.SECONDS_ATTR),
        "worker": t.user_attrs.get("worker"),
        "run_id": t.user_attrs.get("run_id"),
        "findings": t.user_attrs.get("findings", []),
        "retry_of": retried_from,
        "evaluations": len(t.intermediate_values),
        "fidelity": t.user_attrs.get("fidelity"),
        "promoted_from": t.user_attrs.get("promoted_from"),
        "seconds_per_step": t.user_attrs.get("seconds_per_step"),
    }


def _result(state: SweepState, study: Any, name: str, url: str) -> SweepResult:
    """The study as of now (every worker's trials), with this worker's view of the share."""
    config, space, allowed, parent, out, meter = state.config, state.space, state.meter.allowed, state.parent, state.out, state.meter
    rows = [_trial_row(t) for t in study.get_trials(deepcopy=False)]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    counts["budget_cut"] = sum(1 for r in rows if r["state"] == "COMPLETE" and str(r["reason"]).startswith("budget share"))
    used = meter.spent()  # every worker's charge, this one's up to now
    best: dict[str, Any] | None = None
    rungs: list[dict[str, Any]] = []
    if config.sweep.fidelity != "full":  # the best of the highest rung: values compare only at equal fidelity
        rungs, best = summary(rows, study.direction.name.lower(), study.user_attrs.get(KEPT_ATTR, {}))
    else:
        with contextlib.suppress(ValueError):
            best = _trial_row(study.best_trial)
    share = {
        "search_share": config.budget.search_share,
        "max_hours": config.budget.max_hours,
        "allowed_seconds": round(allowed, 2),
        "used_seconds": round(used, 2),
        "used_share": round(used / (config.budget.max_hours * 3600), 5),
        "used_of_allowed": round(used / allowed, 4),
        "this_worker_seconds": round(meter.mine, 2),
        "measured_costs": meter.costs.measured(),
        # A worker's first setup (model load, first evaluation) cannot be measured before it runs; if it overran, say so.
        "exceeded": used > allowed,
    }
    return SweepResult(
        study=name,
        storage=masked(url),
        objective=config.sweep.objective,
        direction=study.direction.name.lower(),
        best_params=best["params"] if best else None,
        best_value=best["value"] if best else None,
        best_trial=best["number"] if best else None,
        trials=rows,
        counts=counts,
        share=share,
        space={n: d.describe() for n, d in space.items()},
        sampler=config.sweep.sampler,
        pruner=config.sweep.pruner if config.sweep.fidelity == "full" else f"successive halving over {config.sweep.fidelity}",
        rungs=rungs,
        methods=_methods(rows, study.direction.name.lower()),
        parent_run_id=getattr(parent, "run_id", None),
        out_dir=out,
    )


def _methods(rows: list[dict[str, Any]], direction: str) -> dict[str, dict[str, Any]]:
    """Per PEFT method (``lora.variant``): trials, best value and median seconds per step, its score beside its cost.

    Values compare only at equal fidelity, so in a multi-fidelity sweep the best is read at rung 0
    (where every setting ran); the seconds per step are the trials' own means.
    """
    import statistics

    out: dict[str, dict[str, Any]] = {}
    for variant in sorted({str((r["params"] or {}).get("lora.variant", "lora")) for r in rows}):
        mine = [r for r in rows if str((r["params"] or {}).get("lora.variant", "lora")) == variant]
        done = [r for r in mine if r["state"] == "COMPLETE" and r["value"] is not None and (r["fidelity"] or {}).get("rung", 0) == 0]
        per_step = [r["seconds_per_step"] for r in mine if r["seconds_per_step"] is not None]
        values = [r["value"] for r in done]
        out[variant] = {
            "trials": len(mine),
            "best_value": (min if direction == "minimize" else max)(values) if values else None,
            "seconds_per_step": round(statistics.median(per_step), 4) if per_step else None,
        }
    return out


def _charge(share: dict[str, Any], meter: share_mod.ShareMeter, config: Any) -> None:
    used = meter.spent()
    share.update(
        measured_costs=meter.costs.measured(),
        used_seconds=round(used, 2),
        used_share=round(used / (config.budget.max_hours * 3600), 5),
        used_of_allowed=round(used / meter.allowed, 4),
        this_worker_seconds=round(meter.mine, 2),
        exceeded=used > meter.allowed,
    )


def _write_outputs(result: SweepResult, study: Any, config: Any, meter: share_mod.ShareMeter) -> None:
    from io import StringIO

    from ruamel.yaml import YAML

    from tunerail.io import write_atomic
    from tunerail.sweep.report import write_report

    out = result.out_dir
    assert out is not None
    paths = {"sweep_json": str(out / "sweep.json"), "report": str(out / "report.html")}
    if result.best_params is not None:
        buf = StringIO()
        buf.write(
            f"# best setting of study {result.study} (trial {result.best_trial}, "
            f"{result.objective} {result.best_value:.6g}); apply with `tunerail run` or merge into tunerail.yaml\n"
        )
        YAML().dump(overlay(result.best_params), buf)
        write_atomic(out / "best.yaml", buf.getvalue())
        paths["best_yaml"] = str(out / "best.yaml")
    result.paths = paths
    write_report(out / "report.html", result, study)
    _charge(result.share, meter, config)  # sweep.json is written last and counts the report's seconds too
    write_atomic(out / "sweep.json", json.dumps(result.to_dict(), indent=2, default=str))
