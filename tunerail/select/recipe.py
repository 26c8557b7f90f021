"""`tunerail select`: probe candidate base models on a sample of your data and recommend one.

Reads top to bottom:

1. candidates  from ``--candidates`` or ``model.candidates``; every missing one is named (exit 2)
2. sample      a seeded sample of the validation split (or the data); k-shot examples and the
               training rows for the time probe come from the other rows
3. measure     per candidate, resumable (``<out>/candidates/*.json``): licence, bits per byte on
               the data and on the general suite, tokenizer fit, task score zero-/k-shot, and the
               train recipe's own time/memory probe
4. decide      licence gate, budget and memory fit, language fit, the recommendation rule
5. write       ``select.json`` and a self-contained ``report.html``

Cost (2 CPU cores): about a minute per 100M parameters for 200 rows, plus the training probe.
"""

from __future__ import annotations

import gc
import hashlib
import json
import random
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence


from tunerail import stats as S
from tunerail import tasks as T
from tunerail.config import TunerailConfig
from tunerail.data.hub import HubSource, source_for
from tunerail.data.records import Record
from tunerail.errors import Problem, TunerailError
from tunerail.findings import Finding, Severity, sort_findings
from tunerail.io import write_atomic
from tunerail.prompting import pick_template, prompt_for
from tunerail.select import licence as L
from tunerail.select import probes as P
from tunerail.select.recommend import Entry, recommend

ProgressFn = Callable[[str, int, int], None]
FORMAT_VERSION = 2  # 2: memory from a fresh process with the largest batch


@dataclass
class CandidateResult:
    """Everything measured for one candidate (``measures`` is what ``candidates/<slug>.json`` holds)."""

    name: str
    resolved: str
    licence: dict[str, Any]
    params: int
    scores: dict[str, dict[str, Any]]  # zero_shot / k_shot -> Estimate dict of the task metric
    score: dict[str, Any]  # the better setting's Estimate, with "setting"
    bits_per_byte: dict[str, Any]  # Estimate dict on the sample's reference answers
    bits_per_byte_general: float | None  # on the forgetting suite
    tokenizer: dict[str, Any]
    resources: dict[str, Any]
    findings: list[Finding]
    eligible: bool = True
    blocked: list[str] = field(default_factory=list)
    seconds: float = 0.0
    resumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["findings"] = [f.to_dict() for f in self.findings]
        return out


@dataclass
class SelectResult:
    """What `tunerail select` prints and writes (``to_dict()`` is select.json)."""

    recommended: str | None
    reason: str
    decided_by: str
    ranking: list[str]
    candidates: list[CandidateResult]
    comparisons: dict[str, Any]
    findings: list[Finding]
    task: str
    metric: str
    sample: dict[str, Any]
    baselines: dict[str, dict[str, Any]]  # classification: cheap baselines on the same sample
    acknowledged: list[str]
    seconds: float
    select_json: str | None = None
    report_html: str | None = None

    @property
    def blocked(self) -> bool:
        return self.recommended is None

    def candidate(self, name: str) -> CandidateResult:
        return next(c for c in self.candidates if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        from tunerail import __version__

        out = dict(self.__dict__)
        out["candidates"] = [c.to_dict() for c in self.candidates]
        out["findings"] = [f.to_dict() for f in self.findings]
        out["version"] = __version__
        return out


def select(
    config: TunerailConfig,
    *,
    data: str | Path | Sequence[Record] | None = None,
    train_data: str | Path | Sequence[Record] | None = None,
    candidates: Sequence[str] | None = None,
    out_dir: str | Path = "select",
    progress: ProgressFn | None = None,
) -> SelectResult:
    """Measure each candidate on a seeded sample of ``data`` and recommend the smallest adequate one.

    Parameters
    ----------
    config : TunerailConfig (``model.candidates``, ``select``, ``criteria.metric``, ``budget``, ``train``).
    data : rows to probe on: the validation split (``tunerail run`` passes it) or the data file;
        default ``data.path``. ``select.sample_rows`` of them are drawn with ``select.seed``.
    train_data : rows training would use (k-shot examples, time estimate); default: the rows of
        ``data`` outside the sample.
    candidates : overrides ``model.candidates`` (hub ids, local folders, ``bundled:*``).
    out_dir : folder for ``select.json``, ``report.html`` and the per-candidate resume files.
    progress : ``progress(stage, done, total)``; stages are prefixed with the candidate's name.

    Raises
    ------
    TunerailError : no candidates, a candidate that does not exist (every one named), no usable rows.

    Notes
    -----
    A candidate whose measurements are already in ``out_dir/candidates`` for the same model, sample
    and settings is not measured again, so an interrupted select resumes where it stopped.
    """
    t0 = time.perf_counter()
    sc = config.select
    out = Path(out_dir)
    names = list(candidates or config.model.candidates)

    # 1. candidates --------------------------------------------------------------------------
    if not names:
        raise TunerailError(
            Problem(
                "no candidates to compare",
                field="model.candidates",
                fix="list base models under model.candidates, or pass --candidates ID ...",
            )
        )
    resolved = resolve_candidates(names)

    # 2. sample ------------------------------------------------------------------------------
    records = _load(config, data if data is not None else source_for(config))
    rng = random.Random(sc.seed)
    order = list(range(len(records)))
    rng.shuffle(order)
    in_sample = sorted(order[: sc.sample_rows])
    sample = [records[i] for i in in_sample]
    rest = [records[i] for i in sorted(order[sc.sample_rows :])]
    train_rows = _load(config, train_data) if train_data is not None else rest
    if not train_rows:
        train_rows = sample  # tiny data: the time probe still needs rows (k-shot is then skipped)
    task = config.task
    T.check_labels(task, sample)
    labels = sorted({r.label for r in records + list(train_rows) if r.label is not None}) if task == "classification" else []
    metric = P.score_metric(config, task)
    template = pick_template(config)
    shots = T.pick_shots(train_rows if train_rows is not sample else [], sc.few_shot)
    refs = [r.completion for r in sample]
    language, language_share = P.data_language(sample, config)
    sample_info = {
        "rows": len(sample),
        "of": len(records),
        "seed": sc.seed,
        "shots": len(shots),
        "train_rows": len(train_rows),
        "language": language,
        "language_share": round(language_share, 3),
        "source": str(data) if isinstance(data, (str, Path)) else None,
        "hash": hashlib.sha256(json.dumps([r.text for r in sample], ensure_ascii=False).encode()).hexdigest()[:16],
    }
    settings = {
        "sample": sample_info["hash"],
        "shots": shots,
        "template": template.model_dump(mode="json"),
        "task": task,
        "labels": labels,
        "select": sc.model_dump(mode="json"),
        "train": config.train.model_dump(mode="json"),
        "max_seq_length": config.model.max_seq_length,
        "eval": {k: getattr(config.eval, k) for k in ("max_new_tokens", "length_normalize")},
        "train_rows": len(train_rows),
        "format": FORMAT_VERSION,
    }

    # 3. measure -----------------------------------------------------------------------------
    raw: dict[str, dict[str, Any]] = {}
    for name in names:
        raw[name] = _measure_or_resume(
            config, name, resolved[name], out / "candidates", settings, sample, train_rows, template, labels, shots, task, progress
        )

    # 4. decide ------------------------------------------------------------------------------
    n = len(sample)
    results = [_candidate_result(config, name, raw[name], task, metric, refs, labels, n) for name in names]
    for c in results:
        c.findings += fit_findings(c, config, language=language, memory_bytes=P.machine_memory_bytes())
        c.blocked = [f.code + " " + f.check for f in c.findings if f.severity == Severity.ERROR]
        c.eligible = not c.blocked
    entries = [
        Entry(
            c.name,
            c.params,
            c.score,
            _score_stat(raw[c.name], c.score["setting"], task, refs, labels, metric),
            c.bits_per_byte,
            P.bpb_statistic(raw[c.name]["bits"], raw[c.name]["bytes"]),
            c.blocked,
        )
        for c in results
    ]
    rec = recommend(entries, n, alpha=sc.alpha, near_zero=sc.near_zero, resamples=sc.bootstrap, seed=sc.seed)
    baselines = {}
    if train_rows is not sample:
        baselines = P.cheap_baselines(config, train_rows, sample, labels, metric, out / "alternatives")
    findings = sort_findings(
        [f for c in results for f in c.findings] + rec.findings + baseline_findings(baselines, entries, rec.recommended, n, sc)
    )
    result = SelectResult(
        recommended=rec.recommended,
        reason=rec.reason,
        decided_by=rec.decided_by,
        ranking=rec.ranking,
        candidates=results,
        comparisons=rec.comparisons,
        findings=findings,
        task=task,
        metric=metric,
        sample=sample_info,
        baselines={k: {m: v for m, v in b.items() if m != "outputs"} for k, b in baselines.items()},
        acknowledged=[c for c in names if c in config.model.license_acknowledged],
        seconds=round(time.perf_counter() - t0, 2),
    )

    # 5. write -------------------------------------------------------------------------------
    from tunerail.select.report import write_select_report

    write_select_report(result, out)
    return result


def resolve_candidates(names: Sequence[str]) -> dict[str, str]:
    """Each candidate as a loadable folder or hub id; one error names every candidate that does not exist."""
    from tunerail.models import resolve_model

    problems: list[Problem] = []
    out: dict[str, str] = {}
    for i, name in enumerate(names):
        where = f"model.candidates[{i}]"
        try:
            path = resolve_model(name)
        except TunerailError as exc:
            problems += [Problem(f"candidate {name!r}: {p.message}", field=where, fix=p.fix) for p in exc.problems]
            continue
        folder = Path(path).expanduser()
        if folder.is_dir():
            if not (folder / "config.json").exists():
                problems.append(
                    Problem(
                        f"candidate {name!r} is a folder without config.json, not a model",
                        field=where,
                        fix="point to a folder saved with save_pretrained, a hub id or bundled:*",
                    )
                )
                continue
        elif name.startswith((".", "/", "~")) or name.count("/") != 1 or not _on_hub(name):
            problems.append(
                Problem(
                    f"candidate {name!r} does not exist: no such model folder, and no hub model of that name is available here",
                    field=where,
                    fix="check the spelling; offline (HF_HUB_OFFLINE=1) only cached hub models, local "
                    "folders and bundled:smollm2 / bundled:gemma3 load",
                )
            )
            continue
        out[name] = str(folder) if folder.is_dir() else name
    if problems:
        raise TunerailError(problems)
    return out


def _on_hub(repo_id: str) -> bool:
    """A hub id with a config in the local cache, or (online) on the hub."""
    import os

    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "config.json")
    if isinstance(cached, str):
        return True
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True"):
        return False
    try:
        from huggingface_hub import model_info

        model_info(repo_id)
        return True
    except Exception:
        return False


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[-60:] + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]


def _measure_or_resume(
    config: TunerailConfig,
    name: str,
    resolved: str,
    folder: Path,
    settings: dict[str, Any],
    sample: list[Record],
    train_rows: Sequence[Record],
    template: Any,
    labels: list[str],
    shots: list[tuple[str, str]],
    task: str,
    progress: ProgressFn | None,
) -> dict[str, Any]:
    from tunerail.eval.generate import model_fingerprint

    key = hashlib.sha256(
        json.dumps({"model": model_fingerprint(name, None), **settings}, sort_keys=True, default=str).encode()
    ).hexdigest()[:24]
    path = folder / f"{_slug(name)}.json"
    if path.exists():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved.get("key") == key:
                saved["resumed"] = True
                if progress:
                    progress(f"{name}: measured earlier (resumed)", 1, 1)
                return saved
        except ValueError:
            pass  # a damaged file is measured again
    measured = measure_candidate(config, name, resolved, sample, train_rows, template, labels, shots, task, progress)
    measured["key"] = key
    write_atomic(path, json.dumps(measured, ensure_ascii=False, default=str))
    measured["resumed"] = False
    return measured


def measure_candidate(
    config: TunerailConfig,
    name: str,
    resolved: str,
    sample: list[Record],
    train_rows: Sequence[Record],
    template: Any,
    labels: list[str],
    shots: list[tuple[str, str]],
    task: str,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Every raw measurement of one candidate, as JSON (per-row arrays kept for the paired tests)."""
    from tunerail.eval import generate as G
    from tunerail.eval.forgetting import load_suite

    t0 = time.perf_counter()
    sc = config.select

    def stage(label: str) -> ProgressFn | None:
        return (lambda _s, done, total: progress(f"{name}: {label}", done, total)) if progress else None

    card, source = L.read_card(name, resolved)
    lic = L.classify(card, source)
    lm = G.load_model(name)
    params = sum(p.numel() for p in lm.model.parameters())
    prompts = [prompt_for(lm.tokenizer, r, template) for r in sample]
    bits, n_bytes = P.answer_bits(lm, prompts, [r.completion for r in sample], batch_size=sc.batch_size, progress=stage("bits per byte"))
    suite = load_suite()
    g_bits, g_bytes = P.answer_bits(
        lm,
        [prompt_for(lm.tokenizer, r["prompt"]) for r in suite],
        [r["choices"][r["answer"]] for r in suite],
        batch_size=sc.batch_size,
        progress=stage("general suite"),
    )
    fit_rows = list(train_rows)[:: max(1, len(train_rows) // 5000)] or sample  # at most ~5,000 rows, evenly spaced
    tok_fit = P.tokenizer_fit(lm.tokenizer, fit_rows, template, config.model.max_seq_length)
    outputs = {
        "zero_shot": P.task_outputs(
            lm, sample, task=task, template=template, labels=labels, shots=(), config=config, progress=stage("zero-shot")
        )
    }
    if shots:
        outputs["k_shot"] = P.task_outputs(
            lm, sample, task=task, template=template, labels=labels, shots=shots, config=config, progress=stage(f"{len(shots)}-shot")
        )
    del lm
    gc.collect()
    resources: dict[str, Any] = {"params": params}
    if sc.probe_steps > 0:
        if progress:
            progress(f"{name}: training probe", 0, 1)
        with tempfile.TemporaryDirectory(prefix="tunerail-select-") as tmp:
            resources = P.probe_training(config, name, train_rows, sample, Path(tmp))
        gc.collect()
        if progress:
            progress(f"{name}: training probe", 1, 1)
    return {
        "name": name,
        "resolved": resolved,
        "licence": lic.to_dict(),
        "params": params,
        "bits": bits.tolist(),
        "bytes": n_bytes.tolist(),
        "general_bits_per_byte": float(g_bits.sum() / max(g_bytes.sum(), 1)),
        "tokenizer": tok_fit,
        "outputs": outputs,
        "resources": resources,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _candidate_result(
    config: TunerailConfig, name: str, raw: dict[str, Any], task: str, metric: str, refs: list[str], labels: list[str], n: int
) -> CandidateResult:
    sc = config.select
    scores = {}
    for setting, outputs in raw["outputs"].items():
        stat = P.task_scores(task, refs, outputs, labels).statistic(metric)
        scores[setting] = S.bootstrap_statistic(stat, n, resamples=sc.bootstrap, seed=sc.seed).to_dict()
    setting = max(scores, key=lambda s: scores[s]["value"])
    bpb = S.bootstrap_statistic(P.bpb_statistic(raw["bits"], raw["bytes"]), n, resamples=sc.bootstrap, seed=sc.seed).to_dict()
    lic = L.Licence(**raw["licence"])
    findings = L.gate(name, lic, commercial=config.project.commercial, acknowledged=config.model.license_acknowledged)
    return CandidateResult(
        name=name,
        resolved=raw["resolved"],
        licence=raw["licence"],
        params=int(raw["params"]),
        scores=scores,
        score={**scores[setting], "setting": setting},
        bits_per_byte=bpb,
        bits_per_byte_general=raw.get("general_bits_per_byte"),
        tokenizer=raw["tokenizer"],
        resources=raw["resources"],
        findings=findings,
        seconds=float(raw.get("seconds", 0.0)),
        resumed=bool(raw.get("resumed")),
    )


def _score_stat(raw: dict[str, Any], setting: str, task: str, refs: list[str], labels: list[str], metric: str):
    return P.task_scores(task, refs, raw["outputs"][setting], labels).statistic(metric)


def baseline_findings(
    baselines: dict[str, dict[str, Any]], entries: list[Entry], recommended: str | None, n: int, sc: Any
) -> list[Finding]:
    """SEL050: what the cheap baselines score on the same rows; a warning when one beats the recommendation."""
    scored = {k: b for k, b in baselines.items() if "error" not in b}
    if not scored:
        return []
    shown = ", ".join(f"{k} {b['value']:.3f} [{b['low']:.3f}, {b['high']:.3f}]" for k, b in scored.items())
    failed = "".join(f"; {k} ({b['library']}) failed: {b['error']}" for k, b in baselines.items() if "error" in b)
    out = [
        Finding(
            "select.baselines",
            Severity.INFO,
            f"cheap baselines on the same {n} rows: {shown}{failed}",
            "the fine-tuned model has to beat these (the eval verdict compares against them)",
            code="SEL050",
            details={k: {m: v for m, v in b.items() if m != "outputs"} for k, b in baselines.items()},
        )
    ]
    entry = next((e for e in entries if e.name == recommended), None)
    best = max(scored, key=lambda k: scored[k]["value"])
    if entry is not None and scored[best]["value"] > entry.score["value"]:
        out[0].severity = Severity.WARNING
        out[0].message += f"; {best} scores above {recommended} before fine-tuning ({entry.score['value']:.3f})"
        out[0].fix = "fine-tune (the candidates' scores are before training) or consider shipping the cheap classifier"
    return out


def fit_findings(c: CandidateResult, config: TunerailConfig, *, language: str | None, memory_bytes: int) -> list[Finding]:
    """SEL020 over budget, SEL021 does not fit in memory, SEL022 truncation, SEL040/SEL041 language."""
    out: list[Finding] = []
    est = c.resources.get("estimate") or {}
    budget = config.budget
    if est:
        hours = est["seconds"] / 3600
        if budget.max_hours is not None and hours > budget.max_hours:
            out.append(
                Finding(
                    "select.over_budget",
                    Severity.ERROR,
                    f"{c.name}: training is estimated at {hours:.2f} h, over budget.max_hours {budget.max_hours:g} h",
                    "raise budget.max_hours, train fewer epochs or rows, or pick a smaller candidate",
                    code="SEL020",
                    details={"estimate": est},
                )
            )
        elif budget.max_cost is not None and budget.price_per_hour > 0 and est["cost"] > budget.max_cost:
            out.append(
                Finding(
                    "select.over_budget",
                    Severity.ERROR,
                    f"{c.name}: training is estimated at {est['cost']:.2f} {budget.currency}, over budget.max_cost {budget.max_cost:g}",
                    "raise budget.max_cost or pick a smaller candidate",
                    code="SEL020",
                    details={"estimate": est},
                )
            )
    need = c.resources.get("memory_lora_gb")
    if need is not None and need * 1e9 > memory_bytes:
        out.append(
            Finding(
                "select.memory",
                Severity.ERROR,
                f"{c.name}: LoRA training needs about {need:.1f} GB, this machine has {memory_bytes / 1e9:.1f} GB",
                "lower train.batch_size or model.max_seq_length, or pick a smaller candidate",
                code="SEL021",
            )
        )
    share = c.tokenizer.get("truncated_share", 0.0)
    if share > 0.05:
        out.append(
            Finding(
                "select.truncation",
                Severity.WARNING,
                f"{c.name}: {100 * share:.1f} % of the training rows are longer than model.max_seq_length "
                f"{config.model.max_seq_length} tokens with this tokenizer",
                "raise model.max_seq_length or shorten the rows",
                code="SEL022",
                details={"truncated_rows": c.tokenizer.get("truncated_rows")},
            )
        )
    declared = [x.lower() for x in c.licence.get("languages") or []]
    if language and declared and language.lower() not in declared and "multilingual" not in declared:
        out.append(
            Finding(
                "select.language_declared",
                Severity.WARNING,
                f"{c.name}: the data is in '{language}', the model card declares {', '.join(declared)}",
                "prefer a candidate trained on the data's language",
                code="SEL040",
                details={"language": language, "declared": declared},
            )
        )
    general = c.bits_per_byte_general
    ratio = config.select.language_bpb_ratio
    if language and language != "en" and general and c.bits_per_byte["value"] > ratio * general:
        out.append(
            Finding(
                "select.language_bpb",
                Severity.WARNING,
                f"{c.name}: {c.bits_per_byte['value']:.2f} bits per byte on the '{language}' data vs {general:.2f} "
                f"on the English general suite: the model does not seem to know the language",
                "prefer a candidate trained on the data's language",
                code="SEL041",
                details={"ratio": c.bits_per_byte["value"] / general},
            )
        )
    return out


def _load(config: TunerailConfig, data: str | Path | HubSource | Sequence[Record] | None) -> list[Record]:
    if data is None:
        raise TunerailError(
            Problem("no data to probe the candidates on", field="data.path", fix="set data.path in the config or pass --data FILE")
        )
    if not isinstance(data, (str, Path, HubSource)):
        from tunerail.train.data import load_split

        return load_split(data, config, "select")
    from tunerail.data.loaders import load_usable_records

    return load_usable_records(data, config, missing="data file not found", missing_fix="check data.path or --data")[0]
