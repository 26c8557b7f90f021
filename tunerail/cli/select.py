"""`tunerail select`: compare candidate base models on your data and recommend one."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from tunerail.cli._common import _SEVERITY_STYLE, _progress, app, console, guarded, load_config_or_default
from tunerail.config import field_help


@app.command("select")
@guarded
def select_cmd(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (model.candidates, select, criteria, budget)."),
    candidates: Optional[list[str]] = typer.Option(
        None, "--candidates", help=field_help("model.candidates") + " Repeat the option for each."
    ),
    data: Optional[Path] = typer.Option(None, "--data", help="Rows to probe on (the validation split); default: data.path."),
    train: Optional[Path] = typer.Option(
        None, "--train", help="Training rows (k-shot examples, time estimate); default: the other rows of --data."
    ),
    out: Path = typer.Option(Path("select"), "--out", "-o", help="Folder for select.json, report.html and resume files."),
) -> None:
    """Probe candidates (licence, bits per byte, tokenizer fit, task score, time and memory); recommend the smallest adequate one."""
    from rich.table import Table

    from tunerail.select import select
    from tunerail.select.report import table_rows

    cfg = load_config_or_default(config)
    with _progress() as callback:
        result = select(cfg, data=data, train_data=train, candidates=candidates or None, out_dir=out, progress=callback)
    table = Table(title=f"tunerail select: {result.metric} on {result.sample['rows']} rows")
    for col in ("candidate", "params", result.metric, "bits/byte", "tok/word", "trunc", "mem LoRA", "train min", "licence", "ok"):
        table.add_column(col, justify="left" if col in ("candidate", "licence", "ok") else "right")
    for r in table_rows(result):
        s = r["score"]
        table.add_row(
            ("* " if r["recommended"] else "") + escape(r["name"]),
            f"{r['params_m']:.0f}M",
            f"{s['value']:.3f} [{s['low']:.3f}, {s['high']:.3f}] {r['setting']}",
            f"{r['bpb']['value']:.3f}",
            f"{r['tokens_per_word']:.2f}",
            f"{100 * r['truncated_share']:.1f}%",
            "-" if r["memory_lora_gb"] is None else f"{r['memory_lora_gb']:.2f} GB",
            "-" if r["minutes"] is None else f"{r['minutes']:.1f}",
            escape(f"{r['licence']} ({r['licence_class']})"),
            "yes" if r["eligible"] else "no",
        )
    Console(stderr=True, width=None if sys.stderr.isatty() else 160).print(table)
    for f in result.findings:
        sev = f.severity.value
        console.print(f"[{_SEVERITY_STYLE[sev]}]{sev:>7}[/] {f.code} {escape(f.message)}", highlight=False, soft_wrap=True)
    if result.recommended:
        console.print(f"[bold green]recommended:[/] {escape(result.recommended)} - {escape(result.reason)}")
    else:
        console.print(f"[bold red]no candidate recommended:[/] {escape(result.reason)}")
    console.print(f"wrote [bold]{escape(str(result.select_json))}[/] and report.html")
    if result.recommended is None:
        raise typer.Exit(1)
