"""`tunerail monitor TRAFFIC --reference RUN_DIR`: drift of production traffic against the training data."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from tunerail.cli._common import app, console, guarded
from tunerail.config import field_help


@app.command("monitor")
@guarded
def monitor_cmd(
    traffic: Path = typer.Argument(..., help="traffic.jsonl written by `tunerail serve` (rotations are read too), or its folder."),
    reference: Path = typer.Option(
        ..., "--reference", "-r", help="Run folder: its training split is the reference, its test split the control."
    ),
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="tunerail.yaml of the run (default: found in or above the run folder)."
    ),
    window: Optional[int] = typer.Option(None, "--window", "-w", min=10, help=field_help("monitor.window")),
    since: Optional[str] = typer.Option(None, "--since", help="Only requests at or after this ISO time, e.g. 2026-12-01T00:00."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for monitor.json and report.html (default RUN_DIR/monitor)."),
) -> None:
    """Compare traffic windows with the training split; exit 1 on a drift alert (for cron / CI)."""
    from tunerail.monitor import monitor

    result = monitor(traffic, reference, config=config, window=window, since=since, out_dir=out)
    for w in result.windows:
        sig = [t["name"] for t in w["tests"] if t["significant"]]
        colour = "red" if w["alert"] else "green"
        console.print(
            f"[{colour}]window {w['index']}[/] ({w['rows']} requests): "
            + (f"drift in {', '.join(sig)}" if sig else "no significant drift")
            + f"; out of scope {100 * w['rates']['out_of_scope_share']:.1f} %",
            highlight=False,
        )
    for f in result.findings:
        if f.severity != "info" and f.code != "MON030":
            console.print(f"[yellow]{f.severity.value:>7}[/] {f.code} {escape(f.message)}", highlight=False)
    for f in result.findings:
        if f.code == "MON030":
            console.print(f"[bold red]{escape(f.message)}[/]\n  {escape(f.fix)}", highlight=False)
    console.print(f"{escape(result.settings['rule'])}\nreport: {escape(str(result.report_html))}", highlight=False)
    if result.alert:
        raise typer.Exit(1)
