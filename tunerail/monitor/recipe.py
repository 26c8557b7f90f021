"""`tunerail monitor`: does production traffic still look like the data the verdict was earned on?

``monitor(traffic, reference=RUN_DIR)`` cuts the traffic log into windows and compares each with
the run's training split (the frozen test set is the "no drift" control where a test needs
one): embedding MMD and a cross-fitted domain classifier, token length, language mix, the share
of out-of-scope requests (with examples), the predicted-label distribution, answers matching no
label, refusal and empty-answer rates, answer length; the doctor's PII and format checks on the
logged prompts. All p-values of all windows form one family held at ``monitor.alpha``
(Bonferroni by default, Holm optional). Writes ``monitor.json`` and ``report.html``; an alert
(any significant test) is exit 1 in the CLI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from tunerail.data.records import RowRef

from tunerail.findings import Finding, Severity, sort_findings, summarize
from tunerail.monitor.drift import Measures, Reference, WindowResult, build_reference, decide, permutations_needed, test_window

__all__ = ["monitor", "MonitorResult"]


@dataclass
class MonitorResult:
    alert: bool
    windows: list[dict[str, Any]]
    findings: list[Finding]
    summary: dict[str, Any]
    settings: dict[str, Any]
    traffic: dict[str, Any]
    out_dir: Path | None = None
    report_html: Path | None = None
    monitor_json: Path | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert": self.alert,
            "summary": self.summary,
            "settings": self.settings,
            "traffic": self.traffic,
            "windows": self.windows,
            "findings": [f.to_dict() for f in self.findings],
            "provenance": self.provenance,
        }


def _time(value: Any) -> datetime | None:
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def make_windows(records: Sequence[dict[str, Any]], size: int, min_rows: int, since: str | None = None) -> tuple[list[Any], int]:
    """Consecutive windows of ``size`` successful requests (the last one kept when >= ``min_rows``).

    Returns (windows, requests dropped in a too-short last window).
    """
    from tunerail.errors import Problem, TunerailError
    from tunerail.monitor.drift import Window

    start = None
    if since is not None:
        start = _time(since)
        if start is None:
            raise TunerailError(Problem(f"--since {since!r} is not an ISO date/time", fix="e.g. --since 2026-12-01T00:00"))
    rows, lines = [], []
    for line, rec in enumerate(records, start=1):
        if rec.get("status", 200) != 200 or not isinstance(rec.get("prompt"), str):
            continue
        if start is not None and ((_time(rec.get("time")) or start) < start):
            continue
        rows.append(rec)
        lines.append(line)
    windows, dropped = [], 0
    for i, lo in enumerate(range(0, len(rows), size)):
        chunk = rows[lo : lo + size]
        if len(chunk) < min_rows:
            dropped = len(chunk)
            break
        windows.append(Window(i, chunk, lines[lo : lo + size], chunk[0].get("time"), chunk[-1].get("time")))
    return windows, dropped


def check_traffic(records: Sequence[dict[str, Any]], skipped: int, files: Sequence[Path]) -> None:
    """Refuse a file that is not a traffic log at all, rather than ask to "wait for more traffic".

    A log written by ``tunerail serve`` holds JSON objects with a ``prompt``; random bytes, a
    binary file or a training set given by mistake hold none.
    """
    from tunerail.errors import Problem, TunerailError

    if any(isinstance(rec.get("prompt"), str) for rec in records):
        return
    names = ", ".join(str(f) for f in files)
    if skipped and not records:
        what = f"none of its {skipped:,} lines is a JSON object"
    elif records:
        keys = ", ".join(sorted({str(k) for rec in records[:20] for k in rec})[:10])
        what = f"none of its {len(records):,} records has a 'prompt' (keys seen: {keys})"
    else:
        return  # an empty log: the window check below says to wait for traffic
    raise TunerailError(
        Problem(
            f"is not a traffic log: {what}",
            file=names,
            fix="pass the traffic.jsonl that `tunerail serve` writes (RUN_DIR/traffic/), or that folder",
        )
    )


def _tools(cfg: Any, base_model: str | None) -> Measures:
    """The embedding model, the run's tokenizer (word counts without one) and the doctor's language identifier."""
    from tunerail.data.embeddings import embed_texts
    from tunerail.doctor.checks.language import identify

    def embed(texts: Sequence[str]):
        return embed_texts(list(texts), model=cfg.model.embedding_model)

    tok = None
    if base_model:
        from tunerail.models import load_tokenizer

        tok = load_tokenizer(base_model)

    def lengths(texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        if tok is None:
            return [len(t.split()) for t in texts]
        return [len(ids) for ids in tok(list(texts), add_special_tokens=False)["input_ids"]]

    min_chars, conf = cfg.doctor.min_language_chars, cfg.doctor.language_confidence

    def languages(texts: Sequence[str]) -> list[str | None]:
        out: list[str | None] = []
        for t in texts:
            if sum(ch.isalpha() for ch in t) < min_chars:
                out.append(None)
                continue
            lang, score = identify(t)
            out.append(lang if score >= conf else None)
        return out

    return Measures(embed, lengths, languages)


def _refusal(text: str) -> bool:
    from tunerail.doctor.checks.content import REFUSAL

    return bool(REFUSAL.search(text))


def quality_findings(windows: Sequence[Any], config: Any) -> list[Finding]:
    """The doctor's PII, secret and format checks on the logged prompts and answers, as MON020 findings."""
    from tunerail.data.records import Record
    from tunerail.doctor.context import CheckContext
    from tunerail.doctor.registry import all_checks

    records = []
    for w in windows:
        for rec, line in zip(w.rows, w.lines):
            prompt, output = str(rec.get("prompt", "")), str(rec.get("output") or "")
            msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
            records.append(Record(RowRef(line - 1, line, "traffic"), "chat", msgs, prompt, output, fields={"messages": msgs}))
    if not records:
        return []
    ctx = CheckContext(records=records, config=config)
    wanted = ("pii.", "secrets.", "format.mojibake", "format.control_chars", "format.escape_chars")
    out: list[Finding] = []
    for check in all_checks():
        if not check.name.startswith(wanted):
            continue
        try:
            found = check.func(ctx)
        except Exception as exc:  # a crashing check is an error finding, never silence
            out.append(
                Finding(
                    f"quality.{check.name}",
                    Severity.ERROR,
                    f"doctor check {check.code} crashed on the traffic: {exc}",
                    "report this bug",
                    code="MON020",
                    details={"doctor_code": check.code},
                )
            )
            continue
        if not found:
            continue
        rows = sorted({r for f in found for r in f.rows})
        worst = max(f.severity for f in found)
        out.append(
            Finding(
                f"quality.{check.name}",
                worst,
                f"{len(rows)} logged requests: {found[0].message} (doctor {check.code}, {check.description})",
                "keep serve.mask_pii on; " + found[0].fix,
                rows=rows[:200],
                code="MON020",
                details={"doctor_code": check.code, "count": len(rows)},
            )
        )
    return out


def monitor(
    traffic: str | Path,
    reference: str | Path,
    *,
    config: Any = None,
    window: int | None = None,
    since: str | None = None,
    out_dir: str | Path | None = None,
) -> MonitorResult:
    """Compare windows of the traffic log with the run's training data.

    Parameters
    ----------
    traffic : ``traffic.jsonl`` (its rotations are read too), its folder or the run folder.
    reference : the run folder (train split, frozen test split, labels, tokenizer).
    config : config or YAML path (default: ``tunerail.yaml`` near the run); ``monitor:`` section.
    window : requests per window (default ``monitor.window``).
    since : only requests at or after this ISO time.
    out_dir : where ``monitor.json`` and ``report.html`` go (default ``RUN_DIR/monitor``).

    Returns
    -------
    MonitorResult; ``alert`` is True when any test is significant after the family-wise correction.
    """
    from tunerail.serve.run import load_run
    from tunerail.serve.traffic import read_traffic

    read = read_traffic(traffic)
    check_traffic(read.records, read.skipped, read.files)  # a wrong file is named before the run is loaded
    run = load_run(reference, config)
    cfg = run.config
    mc = cfg.monitor
    size = window or mc.window
    windows, dropped = make_windows(read.records, size, mc.min_rows, since)
    _check_windows(windows, mc.min_rows, read.files[-1])
    train, test = _splits(run)
    ref, results, permutations = _test_windows(run, windows, train, test)
    warn = {"no_label_rate": mc.max_no_label_rate, "refusal_rate": mc.max_refusal_rate, "empty_answer_rate": mc.max_empty_rate}
    findings = decide(results, alpha=mc.alpha, method=mc.correction, rates_warn=warn)
    findings += quality_findings(windows, cfg)
    findings = sort_findings(findings + _traffic_findings(read.skipped, dropped, mc.min_rows))
    result = MonitorResult(
        any(r.alert for r in results),
        [r.to_dict() for r in results],
        findings,
        summarize(findings),
        _settings(run, size, since, results, permutations, ref, len(train), len(test)),
        {
            "records": len(read.records),
            "skipped_lines": read.skipped,
            "files": [str(f) for f in read.files],
            "requests_tested": sum(len(w.rows) for w in windows),
        },
        provenance=_provenance(run, read.files),
    )
    return _write(result, Path(out_dir) if out_dir else run.run_dir / "monitor")


def _check_windows(windows: Sequence[Any], min_rows: int, log: Path) -> None:
    from tunerail.errors import Problem, TunerailError

    if not windows:
        raise TunerailError(
            Problem(
                f"fewer than monitor.min_rows = {min_rows} successful requests to compare",
                file=str(log),
                fix="wait for more traffic, or lower --window / monitor.min_rows",
            )
        )


def _splits(run: Any) -> tuple[list[Any], list[Any]]:
    """The run's training split (required: the reference) and its frozen test split (the no-drift control)."""
    from tunerail.errors import Problem, TunerailError

    train = run.load_split("train")
    if not train:
        raise TunerailError(
            Problem(
                "the run has no readable training split",
                file=str(run.train_path),
                fix="monitor needs split/train.jsonl of the run (written by `tunerail split`)",
            )
        )
    return train, run.load_split("test")


def _test_windows(run: Any, windows: Sequence[Any], train: Sequence[Any], test: Sequence[Any]) -> tuple[Reference, list[WindowResult], int]:
    """The reference measured once, then every test on every window: (reference, window results, permutations)."""
    cfg, mc = run.config, run.config.monitor
    measures = _tools(cfg, run.base_model)
    classification = cfg.task == "classification"
    ref = build_reference(
        [r.prompt for r in train],
        measures=measures,
        mc=mc,
        labels=[r.completion.strip() for r in train] if classification else (),
        test_labels=[r.completion.strip() for r in test] if classification else (),
        answers=[r.completion for r in train],
        control_prompts=[r.prompt for r in test],
    )
    labels = run.labels()
    permutations = permutations_needed(mc.alpha, 8 * len(windows), mc.permutations)
    results = [
        test_window(ref, w, measures=measures, mc=mc, permutations=permutations, labels=labels, task=cfg.task, refusal=_refusal)
        for w in windows
    ]
    return ref, results, permutations


def _traffic_findings(skipped: int, dropped: int, min_rows: int) -> list[Finding]:
    """What about the log itself is worth saying: torn lines skipped, a last window still filling."""
    out = []
    if skipped:
        out.append(
            Finding(
                "traffic.torn_lines",
                Severity.INFO,
                f"{skipped} incomplete log line(s) skipped",
                "nothing to do: a write cut by a crash or full disk",
                code="MON031",
            )
        )
    if dropped:
        out.append(
            Finding(
                "traffic.short_window",
                Severity.INFO,
                f"the last {dropped} requests are fewer than monitor.min_rows = {min_rows}: not tested yet",
                "they are tested once their window fills",
                code="MON032",
            )
        )
    return out


def _settings(
    run: Any, size: int, since: str | None, results: Sequence[WindowResult], permutations: int, ref: Reference, n_train: int, n_test: int
) -> dict[str, Any]:
    """The settings monitor.json records: window, the test family and its correction, the reference."""
    cfg, mc = run.config, run.config.monitor
    n_tests = sum(len(r.tests) for r in results)
    return {
        "window": size,
        "since": since,
        "alpha": mc.alpha,
        "correction": mc.correction,
        "tests_in_family": n_tests,
        "level_per_test": mc.alpha / max(n_tests, 1) if mc.correction == "bonferroni" else None,
        "permutations": permutations,
        "oos_quantile": mc.oos_quantile,
        "oos_threshold": ref.threshold,
        "reference_rows": n_train,
        "reference_sample": int(len(ref.sample)),
        "control_rows": n_test,
        "seed": mc.seed,
        "embedding_model": cfg.model.embedding_model,
        "tokenizer": run.base_model,
        "rule": (
            f"{mc.correction.capitalize()} over all {n_tests} tests of all {len(results)} windows: "
            f"family-wise false-alarm rate <= {mc.alpha}"
        ),
    }


def _provenance(run: Any, files: Sequence[Path]) -> dict[str, Any]:
    from tunerail import __version__
    from tunerail.io import hash_file

    return {
        "version": __version__,
        "traffic_files": {str(f): hash_file(f) for f in files},
        "train": str(run.train_path),
        "test": str(run.test_path),
        "run_dir": str(run.run_dir),
        "config_fingerprint": run.config.fingerprint(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _write(result: MonitorResult, out: Path) -> MonitorResult:
    """monitor.json and report.html in ``out`` (atomic writes)."""
    from tunerail.io import write_atomic
    from tunerail.monitor.report import write_monitor_report

    out.mkdir(parents=True, exist_ok=True)
    result.out_dir = out
    result.monitor_json = write_atomic(
        out / "monitor.json", json.dumps(result.to_dict(), indent=2, sort_keys=True, ensure_ascii=False, default=str)
    )
    result.report_html = write_monitor_report(out / "report.html", result)
    return result
