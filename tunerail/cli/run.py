"""`tunerail run`: the whole guarded pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from tunerail.cli._common import (
    VERBOSE_HELP,
    _checks_progress,
    _progress,
    app,
    console,
    guarded,
)


@app.command("run")
@guarded
def run_pipeline(config: Path = typer.Argument(..., help="tunerail.yaml describing data, model, criteria and budget."),
                 out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default: runs/<project> beside the config)."),
                 force: bool = typer.Option(False, "--force", help="Re-run every step even if its inputs did not change."),
                 resume: bool = typer.Option(False, "--resume", help=(
                     "Continue an interrupted training (crash, kill, budget stop) from its last checkpoint.")),
                 verbose: bool = typer.Option(False, "--verbose", help=VERBOSE_HELP)) -> None:
    """Run doctor -> split -> leakage -> train -> eval; unchanged steps are skipped; exit 1 if NOT READY."""
    from rich.table import Table

    from tunerail.pipeline import run

    def on_event(step: str, message: str) -> None:
        console.print(f"[bold cyan]{step:>8}[/] {escape(message)}")

    def step_progress(step: str) -> Any:
        if step == "train":
            from tunerail.train.progress import RichProgress

            return RichProgress(console)
        return _checks_progress(step) if step == "doctor" else _progress()

    result = run(config, out_dir=out, force=force, resume=resume, on_event=on_event, progress=step_progress)
    table = Table(title="tunerail run", show_lines=False)
    for column in ("step", "status", "seconds"):
        table.add_column(column)
    for step in result.steps:
        table.add_row(step.name, "cached" if step.skipped else "ran", f"{step.seconds:.0f}")
    console.print(table)
    colour = "green" if result.verdict == "READY" else "red"
    console.print(f"verdict: [bold {colour}]{result.verdict}[/]   report: {result.report}")
    if result.verdict != "READY":
        raise typer.Exit(1)
