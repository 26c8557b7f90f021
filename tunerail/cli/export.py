"""`tunerail export RUN_DIR`: ship the judged model, re-scored after export, with a model card."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from tunerail.cli._common import app, console, guarded


@app.command("export")
@guarded
def export_cmd(
    run_dir: Path = typer.Argument(..., help="Run folder written by `tunerail run` (holds eval/report.json and split/test.jsonl)."),
    formats: list[str] = typer.Option(
        ["merged", "adapter"], "--format", "-f", help="merged (base + adapter, safetensors), adapter, and/or gguf (merged, one GGUF file)."
    ),
    quant: str = typer.Option("q8_0", "--quant", help="GGUF type: q8_0 (default), f16, or q4_k_m (needs llama-cpp-python's quantiser)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default RUN_DIR/export)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml of the run (default: found in or above RUN_DIR)."),
    force: bool = typer.Option(False, "--force", help="Export a run whose verdict is not READY (recorded in export.json and the card)."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Load each export back and re-score it on the frozen test rows."),
    push_to_hub: Optional[str] = typer.Option(None, "--push-to-hub", help="Upload each verified export to this Hub repo (private)."),
) -> None:
    """Export merged weights / the adapter / a GGUF; each is loaded back and re-scored; exit 1 when an export fails its check."""
    from tunerail.export import export_model

    result = export_model(run_dir, formats=formats, quant=quant, out_dir=out, force=force, verify=verify, config=config)
    for kind, entry in result.formats.items():
        scores = entry.get("scores") or {}
        diff = scores.get("difference")
        line = f"{kind}: {escape(str(result.out_dir / kind))} ({entry['bytes'] / 1e6:.1f} MB)"
        if diff:
            line += f", re-scored {scores['export']['value']:.3f} vs judged {scores['in_lab']['value']:.3f} (diff CI {diff['low']:+.3f} to {diff['high']:+.3f})"
        console.print(line, highlight=False)
    for f in result.findings:
        if f.severity != "info":
            console.print(f"[red]{f.code}[/] {escape(f.message)}", highlight=False, soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)
    if push_to_hub:
        from tunerail.export.hub import push_to_hub as push

        for kind in result.formats:
            repo = push_to_hub if len(result.formats) == 1 else f"{push_to_hub}-{kind}"
            plan = push(result.out_dir / kind, repo)
            console.print(f"pushed {len(plan['files'])} files to {escape(repo)}", highlight=False)
