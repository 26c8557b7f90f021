"""``doctor()``: load the data, run every registered check, return a typed result.

The recipe, top to bottom:

1. load records with ``load_records`` (rejected rows become format findings, the rest of the
   file is still audited);
2. build the ``CheckContext`` (shared inputs computed lazily, once);
3. run each registered check: skipped when disabled or when an input it needs (embeddings,
   tokenizer, labels) is unavailable, and every skip is recorded; a crashing check becomes an
   error finding ``doctor.check_crashed``, never silence;
4. sort findings deterministically and summarise;
5. with ``fix``, plan the safe repairs (``fix.py``); with ``out_dir``, write ``findings.json``
   (byte-identical for the same input), ``run.json`` (timings, provenance), ``report.html``
   and, with ``fix``, ``clean.jsonl`` and ``quarantine.jsonl``.
"""

from __future__ import annotations

import platform
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from tunerail.config import TunerailConfig
from tunerail.data.hub import HubSource
from tunerail.data.loaders import file_kind, load_records
from tunerail.doctor.context import CheckContext
from tunerail.doctor.fix import FixPlan, plan_fix, read_raw_lines, write_fix
from tunerail.doctor.registry import Check, all_checks
from tunerail.doctor.report import write_report
from tunerail.doctor.result import DoctorResult, SkippedCheck
from tunerail.errors import TunerailError
from tunerail.findings import Finding, Severity, dumps, sort_findings, summarize

Progress = Callable[[str, int, int], None]  # (check name, checks done, checks total)


def doctor(
    data: str | Path | HubSource,
    config: TunerailConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    fix: bool = False,
    semantic: bool | None = None,
    progress: Progress | None = None,
    test: str | Path | None = None,
) -> DoctorResult:
    """Audit ``data`` before any compute is spent on it.

    Parameters
    ----------
    data : path of a JSONL/JSON/CSV/TSV/Parquet file, a ``datasets`` folder or a Hub dataset.
    config : the project config (format, columns, model, thresholds); defaults when None.
    out_dir : write ``findings.json``, ``run.json``, ``report.html`` (and the fix files) here;
        None writes nothing.
    fix : plan the safe repairs; with ``out_dir`` also write ``clean.jsonl`` and ``quarantine.jsonl``.
    semantic : run the embedding checks; None follows ``config.doctor.semantic``.
    progress : called as ``progress(check_name, done, total)`` before each check.
    test : the frozen test file; preference pairs on its prompts are flagged (DOC073).

    Returns
    -------
    DoctorResult, with findings sorted deterministically.

    Raises
    ------
    DataError when the file cannot be read at all (single bad rows become findings).

    Notes
    -----
    ``findings.json`` is byte-identical for the same input and config; ``rows_in`` always
    equals ``records + len(rejections)`` and, with ``fix``, ``kept + quarantined``.

    Examples
    --------
    >>> import tunerail
    >>> result = tunerail.doctor("examples/banking77/train.csv", semantic=False)  # doctest: +SKIP
    >>> [(g["check"], g["rows"]) for g in result.by_check()]  # doctest: +SKIP
    [('size.eval_split', 0), ('language.distribution', 0)]
    >>> result.fails("error")  # doctest: +SKIP
    False
    """
    if out_dir is not None:
        from tunerail.io import check_out_dir

        check_out_dir(out_dir)  # before the audit, not after it
    defaulted = config is None
    config = config or TunerailConfig()
    semantic = config.doctor.semantic if semantic is None else semantic
    timings: dict[str, float] = {}
    started = time.perf_counter()

    records, rejections, fmt = load_records(data, config.data.format, config.data.columns, config.data.group_column)
    timings["load"] = time.perf_counter() - started
    if defaulted and fmt == "text_label":
        config = config.model_copy(update={"task": "classification"})  # no config: the data says what the task is
    ctx = CheckContext(records, rejections, config, fmt, test_prompts=[r.prompt for r in load_records(test)[0]] if test else None)

    findings, ran, skipped = _run_checks(ctx, semantic, progress, timings)
    findings = sort_findings(findings)

    plan = _plan_fix(data, ctx, findings) if fix else None
    summary = _summary(str(data), ctx, findings, ran, skipped, semantic, plan)
    rows_in, stats = len(records) + len(rejections), _row_stats(ctx, findings)
    result = DoctorResult(
        str(data), fmt, config.task, rows_in, len(records), rejections, findings, summary, stats, ran, skipped, timings, plan
    )
    if out_dir is not None:
        _write_outputs(result, ctx, Path(out_dir), started)
    timings["total"] = time.perf_counter() - started
    return result


def _run_checks(
    ctx: CheckContext, semantic: bool, progress: Progress | None, timings: dict[str, float]
) -> tuple[list[Finding], list[str], list[SkippedCheck]]:
    checks = all_checks()
    disabled = set(ctx.config.doctor.disabled_checks)  # names checked when the config was built (tunerail.names)
    findings: list[Finding] = []
    ran: list[str] = []
    skipped: list[SkippedCheck] = []
    unavailable: dict[str, str | None] = {}
    for done, check in enumerate(checks):
        if progress is not None:
            progress(check.name, done, len(checks))
        if check.name in disabled or check.code in disabled:
            skipped.append(SkippedCheck(check.code, check.name, "disabled in doctor.disabled_checks"))
            continue
        t0 = time.perf_counter()
        reason = next((r for need in sorted(check.needs) if (r := _unavailable(ctx, need, semantic, unavailable))), None)
        if time.perf_counter() - t0 > 0.01:
            timings[f"prepare {'/'.join(sorted(check.needs))}"] = time.perf_counter() - t0
        if reason:
            skipped.append(SkippedCheck(check.code, check.name, reason))
            continue
        t0 = time.perf_counter()
        findings.extend(_run_one(check, ctx))
        timings[check.name] = time.perf_counter() - t0
        ran.append(check.name)
    if progress is not None:
        progress("done", len(checks), len(checks))
    return findings, ran, skipped


def _run_one(check: Check, ctx: CheckContext) -> list[Finding]:
    """Run a check; a crash becomes an error finding naming the check and the exception."""
    try:
        found = list(check.func(ctx))
    except Exception as exc:  # noqa: BLE001 - a crashing check must be reported, never swallowed
        detail = str(exc).splitlines()[0] if str(exc) else ""
        return [
            Finding(
                "doctor.check_crashed",
                Severity.ERROR,
                f"check {check.name} ({check.code}) crashed: {type(exc).__name__}: {detail}"[:500],
                f"this is a bug in the check; to go on meanwhile, add '{check.name}' to doctor.disabled_checks",
                code="DOC000",
                details={"crashed_check": check.name, "crashed_code": check.code, "exception": type(exc).__name__},
            )
        ]
    for f in found:
        if not f.code:
            f.code = check.code
    return found


def _unavailable(ctx: CheckContext, need: str, semantic: bool, cache: dict[str, str | None]) -> str | None:
    """Why an input a check needs is missing (None when it is available); each probed once."""
    if need in cache:
        return cache[need]
    reason: str | None = None
    if need == "embeddings":
        if not semantic:
            reason = "semantic checks are off (--no-semantic or doctor.semantic: false)"
        else:
            reason = _probe(lambda: _resolve_embedding_model(ctx))
    elif need == "tokenizer":
        reason = _probe(lambda: ctx.tokenizer)
    elif need == "end_model":
        if not ctx.config.doctor.model_checks:
            reason = "model checks are off (doctor.model_checks: false)"
        else:
            reason = _probe(lambda: _resolve_end_model(ctx))
    elif need == "labels":
        if not any(r.label is not None for r in ctx.records):
            reason = "no labels: not a classification dataset"
    cache[need] = reason
    return reason


def _resolve_embedding_model(ctx: CheckContext) -> None:
    from tunerail.models import resolve_model

    path = Path(resolve_model(ctx.config.model.embedding_model))
    if ctx.config.model.embedding_model.startswith("bundled:") and not path.exists():
        raise TunerailError(f"bundled encoder not found at {path}")


def _resolve_end_model(ctx: CheckContext) -> None:
    from tunerail.models import load_tokenizer

    load_tokenizer(ctx.config.doctor.end_model)


def _probe(load: Callable[[], Any]) -> str | None:
    try:
        load()
    except TunerailError as exc:
        return f"model unavailable: {exc.problems[0].message}"
    except Exception as exc:  # noqa: BLE001 - whatever breaks the load, the dependent checks are skipped and say why
        return f"model unavailable: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def _plan_fix(data: str | Path | HubSource, ctx: CheckContext, findings: list[Finding]) -> FixPlan:
    """The safe repairs (``--fix``); unparseable JSONL lines are re-read raw so quarantine keeps them as written."""
    lines = [r.ref.line for r in ctx.rejections if r.check == "format.unparseable"]
    raw = {}
    if lines and not isinstance(data, HubSource) and Path(data).is_file() and file_kind(Path(data)) == "jsonl":
        raw = read_raw_lines(data, lines)
    doc = ctx.config.doctor
    return plan_fix(ctx.records, ctx.rejections, findings, mask_pii=doc.mask_pii, phone_region=doc.phone_region, raw_lines=raw)


def _summary(
    data: str, ctx: CheckContext, findings: list[Finding], ran: list[str], skipped: list[SkippedCheck], semantic: bool, plan: FixPlan | None
) -> dict[str, Any]:
    config, records, rejections = ctx.config, ctx.records, ctx.rejections
    counts = summarize(findings)
    out: dict[str, Any] = {
        "data": data,
        "format": ctx.format,
        "task": config.task,
        "model": config.model.base,
        "max_seq_length": config.model.max_seq_length,
        "semantic": semantic,
        "rows_in": len(records) + len(rejections),
        "records": len(records),
        "rejected": len(rejections),
        **counts,
        "checks_run": ran,
        "checks_skipped": [s.to_dict() for s in skipped],
    }
    if plan is not None:
        out["fix"] = plan.summary()
    return out


def _row_stats(ctx: CheckContext, findings: list[Finding]) -> dict[str, Any]:
    """Per-row figures for the report's plots; only what the checks already computed."""
    stats: dict[str, Any] = {
        "answer_chars": [len(r.completion) for r in ctx.records],
        "labels": dict(Counter(r.label for r in ctx.records if r.label is not None).most_common()),
    }
    if ctx.token_lengths_if_computed is not None:
        stats["token_lengths"] = list(ctx.token_lengths_if_computed)
    langs = ctx.languages
    if langs is not None:
        conf = ctx.config.doctor.language_confidence
        stats["languages"] = dict(Counter(item[0] if item[1] >= conf else "uncertain" for item in langs if item is not None).most_common())
    clusters: dict[str, list[int]] = {}
    for f in findings:
        if f.cluster is not None:
            clusters.setdefault(f.check, []).append(len(f.rows))
    stats["cluster_sizes"] = clusters
    return stats


def _write_outputs(result: DoctorResult, ctx: CheckContext, out_dir: Path, started: float) -> None:
    """Write every output into a staging folder and swap the complete set in (never a mix of two runs)."""
    from tunerail.io import staged_outputs

    with staged_outputs(out_dir, owned=DOCTOR_OUTPUTS) as stage:
        _write_all(result, ctx, stage, started)
    result.out_dir = out_dir
    result.files = {key: out_dir / path.name for key, path in result.files.items()}


# Every file the doctor writes: a re-run removes those it did not write again (no stale clean.jsonl).
DOCTOR_OUTPUTS = ("findings.json", "clean.jsonl", "quarantine.jsonl", "report.html", "run.json")


def _write_all(result: DoctorResult, ctx: CheckContext, out_dir: Path, started: float) -> None:
    from tunerail import __version__
    from tunerail.io import hash_file, write_atomic

    result.files["findings"] = write_atomic(out_dir / "findings.json", dumps(result.to_json()))
    if result.fix is not None:
        result.files["clean"], result.files["quarantine"] = write_fix(result.fix, out_dir)
    t0 = time.perf_counter()
    result.files["report"] = write_report(result, ctx, out_dir / "report.html")
    result.timings["report"] = time.perf_counter() - t0
    result.timings["total"] = time.perf_counter() - started
    data = Path(result.data)
    run = {
        "tunerail_version": __version__,
        "python": platform.python_version(),
        "data": result.data,
        "data_sha256": hash_file(data) if data.is_file() else None,
        "config_fingerprint": ctx.config.fingerprint(),
        "semantic": result.summary["semantic"],
        "checks_run": result.checks_run,
        "checks_skipped": [s.to_dict() for s in result.skipped],
        "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
        "rows_per_s": round(result.rows_in / result.timings["total"], 1) if result.timings["total"] else None,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    result.files["run"] = write_atomic(out_dir / "run.json", dumps(run))
