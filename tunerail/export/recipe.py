"""`tunerail export RUN_DIR`: the judged model as something a team deploys, verified before it is trusted.

Recipe
------
1. resolve the run folder (config, base model, adapter, frozen test rows) as `serve` does;
2. gate on the verdict in ``eval/report.json``: NOT READY (or never evaluated) needs ``force=True``,
   which is recorded in ``export.json`` and in the model card;
3. write each format into ``OUT/<format>/`` (``merged``: base + adapter merged, safetensors, with the
   training tokenizer and its chat template; ``adapter``: the peft adapter with the same tokenizer);
4. verify each one (``tunerail.export.verify``): loaded back the way a user serves it, tokenizer checked
   against training's, re-scored on the frozen test rows and compared row by row with the judged model;
5. write ``README.md`` (the model card) into every format folder, and ``export.json`` + findings.

``gguf`` (on request, ``--format gguf --quant q8_0|f16|q4_k_m``) is the merged model converted by
``tunerail.export.gguf`` into one ``model-<quant>.gguf`` and verified like the others, loaded back
from the GGUF file alone (its own tokenizer and chat template).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tunerail.errors import Problem, TunerailError
from tunerail.findings import Finding, Severity, dumps
from tunerail.io import hash_file, read_json, staged_outputs, write_atomic

FORMATS = ("merged", "adapter", "gguf")
DEFAULT_FORMATS = ("merged", "adapter")


@dataclass
class ExportResult:
    """What `tunerail export` prints; ``to_dict()`` is export.json."""

    out_dir: Path
    verdict: str | None
    forced: bool
    run_dir: Path | None = None  # where serve finds the config, labels and traffic log of an export
    config_path: str | None = None
    formats: dict[str, dict[str, Any]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No error finding: every export loads, keeps the training tokens and scores as the judged model."""
        return not any(f.severity >= Severity.ERROR for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "run_dir": str(self.run_dir.resolve()) if self.run_dir else None,
            "config": self.config_path,
            "verdict": self.verdict,
            "forced": self.forced,
            "formats": self.formats,
            "findings": [f.to_dict() for f in self.findings],
            "ok": self.ok,
        }


def export_model(
    run_dir: str | Path,
    *,
    formats: Sequence[str] = DEFAULT_FORMATS,
    out_dir: str | Path | None = None,
    quant: str = "q8_0",
    force: bool = False,
    verify: bool = True,
    config: Any = None,
    cache_dir: str | Path | None = "default",
) -> ExportResult:
    """Export a finished run; see the module docstring. Raises ``TunerailError`` (exit 2) when it cannot."""
    from tunerail.serve.run import load_run

    _check_formats(formats, quant)
    run = load_run(run_dir, config)
    if run.adapter_dir is None:
        raise TunerailError(Problem("the run folder holds no adapter to export", file=str(run.run_dir), fix="train first"))
    report = _eval_report(run.run_dir)
    verdict = report.get("verdict") if report else None
    _gate(verdict, force, run.run_dir)
    out = Path(out_dir) if out_dir is not None else run.run_dir / "export"
    result = ExportResult(out, verdict, force and verdict != "READY", run.run_dir, _abs(run.config.source))
    records = run.load_split("test")
    if verify and not records:
        raise TunerailError(
            Problem(
                "no frozen test rows to verify the export on",
                file=str(run.test_path),
                fix="pass the run folder of `tunerail run`, or --no-verify",
            )
        )
    with staged_outputs(out, owned=(*FORMATS, "export.json")) as tmp:
        reference = _reference_scores(run, records, cache_dir) if verify else None
        for kind in formats:
            result.formats[kind] = _export_one(run, kind, tmp / kind, records, reference, result, cache_dir, quant)
            _write_card(run, report, result, kind, tmp / kind)
        write_atomic(tmp / "export.json", dumps(result.to_dict()))
    return result


def _abs(path: str | None) -> str | None:
    return str(Path(path).resolve()) if path else None


def _check_formats(formats: Sequence[str], quant: str) -> None:
    from tunerail.export.gguf import QUANTS

    unknown = [f for f in formats if f not in FORMATS]
    if "gguf" in formats and quant not in QUANTS:
        raise TunerailError(Problem(f"unknown GGUF quantisation {quant!r}", field="--quant", fix=f"use one of: {', '.join(QUANTS)}"))
    if unknown or not formats:
        raise TunerailError(
            Problem(f"unknown export format(s) {unknown or formats}", field="--format", fix=f"use one of: {', '.join(FORMATS)}")
        )


def _eval_report(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "eval" / "report.json"
    return read_json(path, "eval report") if path.is_file() else None


def _gate(verdict: str | None, force: bool, run_dir: Path) -> None:
    """A model leaves the lab READY, or by an explicit, recorded ``--force``."""
    if verdict == "READY" or force:
        return
    what = "was never evaluated (no eval/report.json)" if verdict is None else f"has the verdict {verdict}"
    raise TunerailError(
        Problem(
            f"the run {what}: tunerail exports only what was judged READY",
            file=str(run_dir),
            fix="fix the fine-tune (the eval report says why), or pass --force to export anyway; --force is recorded in export.json and the model card",
        )
    )


def _reference_scores(run: Any, records: list[Any], cache_dir: str | Path | None) -> tuple[Any, Any]:
    """The judged model (base + adapter merged in memory, as eval loads it) on the frozen test rows."""
    from tunerail.eval import generate as G
    from tunerail.eval.rescore import rescore

    lm = G.load_model(run.base_model, run.adapter_dir)
    return lm, rescore(run.config, lm, records, labels=run.labels(), cache=_cache(cache_dir), name="in_lab")


def _cache(cache_dir: str | Path | None) -> Path | None:
    if cache_dir == "default":
        from tunerail.models import cache_root

        return cache_root() / "eval"
    return Path(cache_dir) if cache_dir is not None else None


def _export_one(
    run: Any, kind: str, folder: Path, records: list[Any], reference: Any, result: ExportResult, cache_dir: Any, quant: str
) -> dict[str, Any]:
    """Write one format, then (with a reference) verify it; returns its export.json entry."""
    from tunerail.export.verify import verify_folder

    t = time.perf_counter()
    if kind == "gguf":
        _write_gguf(run, folder, quant)
    else:
        (_write_merged if kind == "merged" else _write_adapter)(run, folder)
    entry: dict[str, Any] = {
        "path": kind,
        "bytes": sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()),
        "write_seconds": round(time.perf_counter() - t, 2),
        "base_model": run.base_model,
        "kind": kind,
        "adapter_sha256": hash_file(run.adapter_dir / "adapter_model.safetensors")
        if (run.adapter_dir / "adapter_model.safetensors").exists()
        else None,
        "forced": result.forced,
    }
    if kind == "gguf":
        entry["quant"] = quant
    if reference is not None:
        scores, findings = verify_folder(
            run.config, folder, kind, run.base_model, records, reference, labels=run.labels(), cache=_cache(cache_dir)
        )
        entry["scores"] = scores
        result.findings.extend(findings)
    return entry


def _write_merged(run: Any, folder: Path) -> None:
    """Base + adapter merged (``merge_and_unload``), saved as safetensors with the training tokenizer."""
    from peft import PeftModel

    from tunerail.models import load_causal_lm, load_tokenizer

    model = PeftModel.from_pretrained(load_causal_lm(run.base_model), str(run.adapter_dir)).merge_and_unload()
    tokenizer = load_tokenizer(run.base_model)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))


def _write_gguf(run: Any, folder: Path, quant: str) -> None:
    """The merged model (written beside, then removed) converted into one ``model-<quant>.gguf``."""
    from tunerail.export.gguf import convert, gguf_name

    merged = folder / "_merged"
    _write_merged(run, merged)
    try:
        convert(merged, folder / gguf_name(quant), quant)
    finally:
        shutil.rmtree(merged, ignore_errors=True)


def _write_adapter(run: Any, folder: Path) -> None:
    """The peft adapter as trained, plus the training tokenizer (its chat template included)."""
    from tunerail.models import load_tokenizer

    shutil.copytree(run.adapter_dir, folder)
    load_tokenizer(run.base_model).save_pretrained(str(folder))


def _write_card(run: Any, report: dict[str, Any] | None, result: ExportResult, kind: str, folder: Path) -> None:
    from tunerail.export.card import build_card

    build_card(run.config, report, result.formats[kind], _licence(run.base_model)).save(str(folder / "README.md"))


def _licence(base_model: str) -> str | None:
    """The base model's licence as its card states it (SPDX where it is), for the card's header."""
    from tunerail.models import resolve_model
    from tunerail.select.licence import classify, read_card

    try:
        card, source = read_card(base_model, resolve_model(base_model))
    except Exception:  # an unreadable card leaves the licence unknown ("other"), never blocks an export
        return None
    lic = classify(card, source)
    return lic.spdx.lower() if lic.spdx else lic.raw
