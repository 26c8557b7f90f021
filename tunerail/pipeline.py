"""`tunerail run`: doctor -> split -> leakage -> [select] -> [sweep] -> train -> eval with one config, resumable step by step.

Each step records the hash of its inputs (the config sections it reads + the content of its
input files) in ``<out>/<step>/step.json``; when a later run finds the same hash and the step's
outputs intact, the step is skipped. Change the data, and every step re-runs; change only
``eval``, and only eval re-runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager

from tunerail.config import TunerailConfig, load_config
from tunerail.data.hub import HubSource, moved_since, pin, source_for
from tunerail.errors import GuardrailError, Problem, TunerailError
from tunerail.findings import Finding, load_findings
from tunerail.gate import gate, unresolved_doctor_findings
from tunerail.io import hash_file, read_json, write_atomic
from tunerail.store import Store

STEPS = ("doctor", "split", "leakage", "select", "sweep", "train", "eval")


@dataclass
class StepRecord:
    name: str
    inputs_hash: str
    outputs: dict[str, str]
    seconds: float
    skipped: bool = False
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineResult:
    config: TunerailConfig
    out_dir: Path
    steps: list[StepRecord]
    verdict: str | None = None
    report: Path | None = None
    results: dict[str, Any] = field(default_factory=dict)
    model_choice: dict[str, Any] | None = None  # select's recommendation, what was trained and why

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)


# What each step reads from the config (dotted paths). Its cache key hashes exactly these values
# plus the tunerail version, so a field a step reads can never change without the step re-running.
STEP_READS: dict[str, tuple[str, ...]] = {
    "doctor": ("task", "data", "model", "prompts", "doctor", "split", "criteria", "eval.prompt_version"),
    "split": (
        "task",
        "data",
        "split",
        "criteria",
        "doctor.near_duplicate_threshold",
        "model.embedding_model",
        "store",
    ),  # the store: its snapshots are what lineage links the checkpoint to
    "leakage": ("task", "data", "split", "doctor.near_duplicate_threshold", "model.embedding_model"),
    "select": ("project", "task", "data", "model", "prompts", "criteria", "select", "train", "budget", "eval"),
    "sweep": ("task", "data", "model", "prompts", "train", "budget", "sweep", "criteria", "tracking"),
    "train": ("task", "data", "model", "prompts", "train", "budget", "tracking", "eval.prompt_version", "store"),
    "eval": ("task", "data", "model", "prompts", "criteria", "eval", "split.seed", "store"),  # the store vouches for split and adapter
}


def step_config(step: str, cfg_json: dict[str, Any]) -> dict[str, Any]:
    """The config values ``step`` reads (``STEP_READS``) and the tunerail version: the config part of its key."""
    from tunerail import __version__

    part: dict[str, Any] = {"tunerail_version": __version__}
    for dotted in STEP_READS[step]:
        node: Any = cfg_json
        for key in dotted.split("."):
            node = node[key]
        part[dotted] = node
    return part


def _hash_inputs(config_part: Any, files: list[Path]) -> str:
    digest = hashlib.sha256(json.dumps(config_part, sort_keys=True, default=str).encode())
    for path in files:
        digest.update(path.name.encode())
        digest.update(hash_file(path).encode() if path.is_file() else b"missing")
    return digest.hexdigest()


def _cached(step_dir: Path, inputs_hash: str) -> StepRecord | None:
    record = step_dir / "step.json"
    if not record.exists():
        return None
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None  # a damaged record: run the step again
    if not isinstance(data, dict) or data.get("inputs_hash") != inputs_hash:
        return None
    if not all(Path(p).exists() for p in data.get("outputs", {}).values()):
        return None
    return StepRecord(data["name"], inputs_hash, data["outputs"], 0.0, True, data.get("summary", {}))


def _run_step(
    name: str,
    step_dir: Path,
    inputs_hash: str,
    force: bool,
    body: Callable[[], tuple[dict[str, str], dict[str, Any], Any]],
    on_event: Callable[[str, str], None],
) -> tuple[StepRecord, Any]:
    if not force:
        cached = _cached(step_dir, inputs_hash)
        if cached is not None:
            on_event(name, "skipped (inputs unchanged)")
            return cached, None
    on_event(name, "running")
    start = time.perf_counter()
    outputs, summary, result = body()
    record = StepRecord(name, inputs_hash, {k: str(v) for k, v in outputs.items()}, time.perf_counter() - start, False, summary)
    write_atomic(step_dir / "step.json", json.dumps(record.__dict__, indent=2, sort_keys=True, default=str))
    on_event(name, f"done in {record.seconds:.0f} s")
    return record, result


def _lineage(store: Store, split_json: Path, train_json: Path) -> dict[str, Any]:
    """Store ids the eval report links to (snapshot -> split -> checkpoint -> run)."""
    links: dict[str, Any] = {"store": str(store.root)}
    if split_json.exists():
        links.update(read_json(split_json, "split manifest").get("store", {}))
    if train_json.exists():
        trained = read_json(train_json, "train.json")
        links.update({k: trained[k] for k in ("checkpoint_id", "run_id") if trained.get(k)})
    links.pop("root", None)
    return links


def _sweep_skipped(config: TunerailConfig) -> dict[str, Any] | None:
    """Why ``run`` trains without a sweep (recorded in the train step: a switched-off default is never silent)."""
    if not config.sweep.enabled:
        return {"sweep.enabled": False, "reason": "sweep.enabled: false in the config; training with the hand-set setting"}
    if config.budget.max_hours is None:
        return {"sweep.enabled": True, "reason": "budget.max_hours is not set, so there is no budget.search_share to sweep in"}
    return None


def run(
    config: TunerailConfig | str | Path,
    *,
    out_dir: str | Path | None = None,
    force: bool = False,
    allow_criteria_change: bool = False,
    resume: bool = False,
    on_event: Callable[[str, str], None] | None = None,
    progress: Callable[[str], ContextManager[Any]] | None = None,
    on_findings: Callable[[str, list[Finding], list[Finding]], None] | None = None,
) -> PipelineResult:
    """Run the whole guarded pipeline and return every step's record and the verdict.

    Parameters
    ----------
    config : TunerailConfig or path of tunerail.yaml.
    out_dir : run folder (default ``runs/<project>`` beside the config).
    force : re-run every step, and let ``split`` replace a different frozen test set (recorded).
    allow_criteria_change : let ``split`` accept criteria changed after the test set was frozen
        (recorded in split.json; the verdict on that test set cannot be READY).
    resume : continue an interrupted training from its last checkpoint (``tunerail run --resume``).
    on_event : called as ``on_event(step, message)`` when a step starts, ends or is skipped.
    progress : ``progress(step)`` returns a context manager yielding that step's progress callback.
    on_findings : called as ``on_findings("doctor", findings, unresolved)`` once the doctor step is done
        (run or cached), before any training, so the user sees what the audit found.
    """
    if not isinstance(config, TunerailConfig):
        config = load_config(config)
    data_path = source_for(config)
    if data_path is None:
        raise TunerailError(
            Problem("no training data configured", field="data.path", fix="set data.path in the config (relative to the config file)")
        )
    base = Path(config.source).parent if config.source else Path.cwd()
    r = _Run(
        config,
        out=Path(out_dir) if out_dir else base / "runs" / config.project.name,
        store=Store(config.resolve(config.store.path) or config.store.path),
        force=force,
        on_event=on_event or (lambda step, message: None),
        progress=progress or (lambda step: contextlib.nullcontext(None)),
    )
    clean = r.doctor(data_path, on_findings)  # 1. audit the raw data, quarantine malformed rows, drop duplicates (safe fixes only)
    r.split(clean, allow_criteria_change)  # 2. before any fitting or augmentation; clusters and groups stay whole; test is frozen
    r.leakage()  # 3. leakage between the splits: must be empty after a grouped split
    # Gate: no training on unresolved errors (pipeline.stop_on) or on unread warnings on many rows (recorded).
    r.results["gate"] = gate(r.out, config.pipeline, r.out / "leakage" / "leakage.json")
    # 3b. select: with model.candidates, probe them on the validation split; train the recommended
    # one unless model.base was set explicitly (the choice and the reason are recorded).
    choice = None
    if config.model.candidates:
        r.config, choice, rec = _select_step(r.config, r.out, r.paths, force, r.on_event, r.progress)
        r.steps.append(rec)
    # 3c. sweep (on by default): Optuna search inside budget.search_share; train then uses best.yaml.
    train_config, applied = r.config, None
    skipped = _sweep_skipped(r.config)
    if skipped is None:
        train_config, applied = r.sweep()
    else:
        r.on_event("sweep", f"skipped: {skipped['reason']}")
    trained = r.train(train_config, resume, {"sweep_applied": applied, "sweep_skipped": skipped})  # 4. LoRA with every guardrail on
    rec = r.evaluate(trained)  # 5. criteria, baseline, forgetting, verdict and report
    return PipelineResult(r.config, r.out, r.steps, rec.summary.get("verdict"), Path(rec.outputs["report"]), r.results, choice)


@dataclass
class _Run:
    """One ``tunerail run``: what every step reads (config, run folder, store) and what the steps add (records, paths)."""

    config: TunerailConfig
    out: Path
    store: Store
    force: bool
    on_event: Callable[[str, str], None]
    progress: Callable[[str], ContextManager[Any]]
    steps: list[StepRecord] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)  # split's outputs: train, validation, test, split_json
    hub: HubSource | None = None  # the pinned Hub dataset this run reads (None: a local file)
    hub_key: dict[str, Any] = field(default_factory=dict)  # a moved Hub dataset re-runs doctor and split

    def key(self, step: str, files: list[Path], config: TunerailConfig | None = None, extra: dict[str, Any] | None = None) -> str:
        """The step's cache key: the config values it reads (``STEP_READS``), ``extra`` and its input files."""
        return _hash_inputs(step_config(step, (config or self.config).model_dump(mode="json")) | (extra or {}), files)

    def step(self, name: str, inputs_hash: str, body: Callable[[], tuple[dict[str, Any], dict[str, Any], Any]]) -> StepRecord:
        """Run (or reuse) one step into ``out/<name>``; its record joins ``steps`` and its result ``results``."""
        rec, self.results[name] = _run_step(name, self.out / name, inputs_hash, self.force, body, self.on_event)
        self.steps.append(rec)
        return rec

    def doctor(self, data_path: Any, on_findings: Callable[[str, list[Finding], list[Finding]], None] | None) -> Path:
        from tunerail.doctor import doctor

        doctor_dir = self.out / "doctor"
        hub = pin(data_path) if isinstance(data_path, HubSource) else None  # the commit this run reads, named if it moved
        if hub is not None:
            data_path, moved = hub, moved_since(self.store, hub)
            self.on_event("data", moved or f"{hub.id} at commit {hub.commit}")
            self.results["data"] = {"hub": hub.manifest(), "moved": moved}
            self.hub_key, self.hub = {"hub": hub.manifest()}, hub

        def do_doctor():
            with self.progress("doctor") as callback:
                result = doctor(data_path, self.config, out_dir=doctor_dir, fix=True, progress=callback)
            return (
                {"findings": doctor_dir / "findings.json", "clean": doctor_dir / "clean.jsonl", "report": doctor_dir / "report.html"},
                dict(result.summary),
                result,
            )

        rec = self.step("doctor", self.key("doctor", [data_path] if isinstance(data_path, Path) else [], extra=self.hub_key), do_doctor)
        if on_findings is not None:
            on_findings("doctor", load_findings(doctor_dir / "findings.json"), unresolved_doctor_findings(doctor_dir))
        return Path(rec.outputs["clean"])

    def split(self, clean: Path, allow_criteria_change: bool) -> None:
        from tunerail.split import split

        split_dir = self.out / "split"

        def do_split():
            result = split(
                clean,
                self.config,
                out_dir=split_dir,
                store=self.store,
                force=self.force,
                allow_criteria_change=allow_criteria_change,
                origin=self.hub,
            )
            return (
                {name: result.paths[name] for name in ("train", "validation", "test")} | {"split_json": result.split_json},
                {"sizes": result.sizes},
                result,
            )

        extra = {"allow_criteria_change": allow_criteria_change} | self.hub_key
        rec = self.step("split", self.key("split", [clean], extra=extra), do_split)
        self.paths = {k: Path(v) for k, v in rec.outputs.items()}

    def leakage(self) -> None:
        from tunerail.split.leakage import leakage

        leak_dir = self.out / "leakage"
        splits = {name: self.paths[name] for name in ("train", "validation", "test")}

        def do_leakage():
            return {"leakage": leak_dir / "leakage.json"}, {}, leakage(splits, config=self.config, out_dir=leak_dir)

        self.step("leakage", self.key("leakage", list(splits.values())), do_leakage)

    def sweep(self) -> tuple[TunerailConfig, dict[str, Any] | None]:
        """Run (or reuse, when its inputs are unchanged) the sweep; return the config with best.yaml applied."""
        from tunerail.sweep import sweep
        from tunerail.sweep.space import apply, load_overlay

        sweep_dir, paths = self.out / "sweep", self.paths

        def do_sweep():
            result = sweep(self.config, train_data=paths["train"], validation_data=paths["validation"], out_dir=sweep_dir, store=self.store)
            outputs = {"sweep_json": sweep_dir / "sweep.json", "report": sweep_dir / "report.html"}
            if "best_yaml" in result.paths:
                outputs["best_yaml"] = Path(result.paths["best_yaml"])
            summary = {
                "study": result.study,
                "best_value": result.best_value,
                "best_params": result.best_params,
                "counts": result.counts,
                "share_used": result.share["used_share"],
            }
            return outputs, summary, result

        rec = self.step("sweep", self.key("sweep", [paths["train"], paths["validation"]]), do_sweep)
        if "best_yaml" not in rec.outputs:
            self.on_event("sweep", "no completed trial: training with the configured setting")
            return self.config, None
        params = load_overlay(rec.outputs["best_yaml"])
        return apply(self.config, params), {"best_yaml": rec.outputs["best_yaml"], "params": params, "study": rec.summary.get("study")}

    def train(self, train_config: TunerailConfig, resume: bool, sweep_record: dict[str, Any]) -> StepRecord:
        from tunerail.train import train

        train_dir, paths = self.out / "train", self.paths

        def do_train():
            with self.progress("train") as callback:
                result = train(
                    train_config,
                    train_data=paths["train"],
                    validation_data=paths["validation"],
                    out_dir=train_dir,
                    resume=resume,
                    store=self.store,
                    progress=callback,
                )
            summary = {"stopped_reason": result.stopped_reason, "best_step": result.best_step} | sweep_record
            return {"adapter": Path(result.adapter_dir), "train_json": train_dir / "train.json"}, summary, result

        return self.step("train", self.key("train", [paths["train"], paths["validation"]], config=train_config), do_train)

    def evaluate(self, trained: StepRecord) -> StepRecord:
        from tunerail.eval import evaluate

        eval_dir, paths = self.out / "eval", self.paths
        adapter, train_json = Path(trained.outputs["adapter"]), Path(trained.outputs["train_json"])
        doctor_dir, leakage_json = self.out / "doctor", self.out / "leakage" / "leakage.json"
        files = [
            paths["test"],
            paths["train"],
            paths["validation"],
            paths["split_json"],
            train_json,
            doctor_dir / "findings.json",
            leakage_json,
        ]

        def do_eval():
            with self.progress("eval") as callback:
                result = evaluate(
                    self.config,
                    test_data=paths["test"],
                    adapter_dir=adapter,
                    out_dir=eval_dir,
                    progress=callback,
                    train_data=paths["train"],
                    validation_data=paths["validation"],  # baselines, k-shot
                    train_json=train_json,
                    split_json=paths["split_json"],
                    doctor_findings=unresolved_doctor_findings(doctor_dir),
                    leakage_findings=load_findings(leakage_json),
                    lineage=_lineage(self.store, paths["split_json"], self.out / "train" / "train.json"),
                )
            return {"report": eval_dir / "report.html", "report_json": eval_dir / "report.json"}, {"verdict": result.verdict}, result

        return self.step("eval", self.key("eval", files + sorted(p for p in adapter.rglob("*") if p.is_file())), do_eval)


def _select_step(
    config: TunerailConfig,
    out: Path,
    paths: dict[str, Path],
    force: bool,
    on_event: Callable[[str, str], None],
    step_progress: Callable[[str], ContextManager[Any]],
) -> tuple[TunerailConfig, dict[str, Any], StepRecord]:
    """Run select (cached by its inputs), then decide which base model `train` gets."""
    from tunerail.select import select
    from tunerail.select import licence as L

    select_dir = out / "select"
    cfg_json = config.model_dump(mode="json")
    h = _hash_inputs(step_config("select", cfg_json), [paths["train"], paths["validation"]])

    def do_select():
        with step_progress("select") as callback:
            result = select(config, data=paths["validation"], train_data=paths["train"], out_dir=select_dir, progress=callback)
        return (
            {"select_json": select_dir / "select.json", "report": select_dir / "report.html"},
            {
                "recommended": result.recommended,
                "reason": result.reason,
                "blocked": {c.name: c.blocked for c in result.candidates if c.blocked},
            },
            result,
        )

    rec, _ = _run_step("select", select_dir, h, force, do_select, on_event)
    pinned = "base" in config.model.model_fields_set
    if pinned:
        base = config.model.base
        blocked = rec.summary.get("blocked", {}).get(base)
        if blocked is None and base not in config.model.candidates:
            card, source = L.read_card(base)
            errors = [
                f
                for f in L.gate(
                    base, L.classify(card, source), commercial=config.project.commercial, acknowledged=config.model.license_acknowledged
                )
                if f.severity == "error"
            ]
            blocked = [f"{f.code} {f.check}" for f in errors] or None
        if blocked:
            raise GuardrailError(
                Problem(
                    f"model.base {base!r} is blocked by select: {', '.join(blocked)}",
                    field="model.base",
                    fix=f"see {select_dir / 'report.html'}; pick an eligible model",
                )
            )
        choice = {
            "trained": base,
            "recommended": rec.summary.get("recommended"),
            "pinned": True,
            "reason": f"model.base pins {base}; select recommended {rec.summary.get('recommended')}: {rec.summary.get('reason')}",
        }
    else:
        if not rec.summary.get("recommended"):
            raise GuardrailError(
                Problem(
                    f"select recommended no candidate: {rec.summary.get('reason')}",
                    field="model.candidates",
                    fix=f"see {select_dir / 'report.html'}",
                )
            )
        choice = {
            "trained": rec.summary["recommended"],
            "recommended": rec.summary["recommended"],
            "pinned": False,
            "reason": rec.summary.get("reason"),
        }
    on_event("select", f"training {choice['trained']}: {choice['reason']}")
    rec.summary["choice"] = choice
    write_atomic(select_dir / "choice.json", json.dumps(choice, indent=2))
    chosen = config.model_copy(deep=True)
    chosen.model.base = str(choice["trained"])
    chosen.source = config.source
    return chosen, choice, rec
