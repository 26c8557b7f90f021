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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence


from tunerail import stats as S
from tunerail import tasks as T
from tunerail.config import TunerailConfig
from tunerail.data.hub import HubSource, source_for
from tunerail.data.records import Record
from tunerail.errors import Problem, TunerailError
from tunerail.findings import Severity, sort_findings
from tunerail.io import write_atomic
from tunerail.prompting import pick_template, prompt_for
from tunerail.select import licence as L
from tunerail.select import probes as P
from tunerail.select.findings import baseline_findings, fit_findings
from tunerail.select.recommend import Entry, recommend
from tunerail.select.result import CandidateResult, SelectResult

ProgressFn = Callable[[str, int, int], None]
FORMAT_VERSION = 2  # 2: memory from a fresh process with the largest batch


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
    out = Path(out_dir)
    names = list(candidates or config.model.candidates)

    # 1. candidates --------------------------------------------------------------------------
    if not names:
        fix = "list base models under model.candidates, or pass --candidates ID ..."
        raise TunerailError(Problem("no candidates to compare", field="model.candidates", fix=fix))
    resolved = resolve_candidates(names)

    # 2. sample ------------------------------------------------------------------------------
    s = draw_sample(config, data, train_data)

    # 3. measure -----------------------------------------------------------------------------
    raw = {name: _measure_or_resume(config, name, resolved[name], out / "candidates", s, progress) for name in names}

    # 4. decide ------------------------------------------------------------------------------
    results, entries, rec = _decide(config, names, raw, s)
    cheap = s.train_rows is not s.rows  # tiny data: no rows outside the sample to fit a baseline on
    baselines = P.cheap_baselines(config, s.train_rows, s.rows, s.labels, s.metric, out / "alternatives") if cheap else {}
    findings = sort_findings(
        [f for c in results for f in c.findings]
        + rec.findings
        + baseline_findings(baselines, entries, rec.recommended, len(s.rows), config.select)
    )
    result = SelectResult(
        recommended=rec.recommended,
        reason=rec.reason,
        decided_by=rec.decided_by,
        ranking=rec.ranking,
        candidates=results,
        comparisons=rec.comparisons,
        findings=findings,
        task=s.task,
        metric=s.metric,
        sample=s.info,
        baselines={k: {m: v for m, v in b.items() if m != "outputs"} for k, b in baselines.items()},
        acknowledged=[c for c in names if c in config.model.license_acknowledged],
        seconds=round(time.perf_counter() - t0, 2),
    )

    # 5. write -------------------------------------------------------------------------------
    from tunerail.select.report import write_select_report

    write_select_report(result, out)
    return result


@dataclass
class Sample:
    """The rows every candidate is measured on, and what the measurements depend on (``settings``: the resume key)."""

    rows: list[Record]  # the seeded sample
    train_rows: Sequence[Record]  # k-shot examples and the time probe (``rows`` itself on tiny data)
    task: str
    metric: str
    template: Any
    labels: list[str]
    shots: list[tuple[str, str]]
    language: str | None
    info: dict[str, Any]  # select.json ``sample``
    settings: dict[str, Any]

    @property
    def refs(self) -> list[str]:
        return [r.completion for r in self.rows]


def draw_sample(
    config: TunerailConfig, data: str | Path | Sequence[Record] | None, train_data: str | Path | Sequence[Record] | None
) -> Sample:
    """``select.sample_rows`` rows of ``data`` drawn with ``select.seed``; training rows from ``train_data`` or the rest."""
    sc = config.select
    records = _load(config, data if data is not None else source_for(config))
    rng = random.Random(sc.seed)
    order = list(range(len(records)))
    rng.shuffle(order)
    sample = [records[i] for i in sorted(order[: sc.sample_rows])]
    rest = [records[i] for i in sorted(order[sc.sample_rows :])]
    train_rows = _load(config, train_data) if train_data is not None else rest
    if not train_rows:
        train_rows = sample  # tiny data: the time probe still needs rows (k-shot is then skipped)
    task = config.task
    T.check_labels(task, sample)
    labels = sorted({r.label for r in records + list(train_rows) if r.label is not None}) if task == "classification" else []
    template = pick_template(config)
    shots = T.pick_shots(train_rows if train_rows is not sample else [], sc.few_shot)
    language, language_share = P.data_language(sample, config)
    info = {
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
        "sample": info["hash"],
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
    return Sample(sample, train_rows, task, P.score_metric(config, task), template, labels, shots, language, info, settings)


def _decide(
    config: TunerailConfig, names: list[str], raw: dict[str, dict[str, Any]], s: Sample
) -> tuple[list[CandidateResult], list[Entry], Any]:
    """Each candidate's scores and gates (licence, budget, memory, language), then the recommendation rule."""
    sc, n, refs = config.select, len(s.rows), s.refs
    results = [_candidate_result(config, name, raw[name], s.task, s.metric, refs, s.labels, n) for name in names]
    for c in results:
        c.findings += fit_findings(c, config, language=s.language, memory_bytes=P.machine_memory_bytes())
        c.blocked = [f.code + " " + f.check for f in c.findings if f.severity == Severity.ERROR]
        c.eligible = not c.blocked
    entries = [
        Entry(
            c.name,
            c.params,
            c.score,
            _score_stat(raw[c.name], c.score["setting"], s.task, refs, s.labels, s.metric),
            c.bits_per_byte,
            P.bpb_statistic(raw[c.name]["bits"], raw[c.name]["bytes"]),
            c.blocked,
        )
        for c in results
    ]
    rec = recommend(entries, n, alpha=sc.alpha, near_zero=sc.near_zero, resamples=sc.bootstrap, seed=sc.seed)
    return results, entries, rec


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
    config: TunerailConfig, name: str, resolved: str, folder: Path, s: Sample, progress: ProgressFn | None
) -> dict[str, Any]:
    """A candidate's measurements from ``folder`` when its model and ``s.settings`` are unchanged, else measured and saved."""
    from tunerail.eval.generate import model_fingerprint

    key = hashlib.sha256(
        json.dumps({"model": model_fingerprint(name, None), **s.settings}, sort_keys=True, default=str).encode()
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
    measured = measure_candidate(config, name, resolved, s, progress)
    measured["key"] = key
    write_atomic(path, json.dumps(measured, ensure_ascii=False, default=str))
    measured["resumed"] = False
    return measured


def measure_candidate(config: TunerailConfig, name: str, resolved: str, s: Sample, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Every raw measurement of one candidate, as JSON (per-row arrays kept for the paired tests)."""
    from tunerail.eval import generate as G
    from tunerail.eval.forgetting import load_suite

    t0 = time.perf_counter()
    sc = config.select
    sample, train_rows, template, labels, shots, task = s.rows, s.train_rows, s.template, s.labels, s.shots, s.task

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
