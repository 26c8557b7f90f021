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
from tunerail.findings import Finding, Severity


def print_doctor_summary(step: str, findings: list[Finding], unresolved: list[Finding]) -> None:
    """Show the doctor's table before training, so empty labels or flipped labels are seen on screen."""
    from tunerail.cli.doctor import findings_table

    if not findings:
        console.print(f"[bold cyan]{step:>8}[/] [green]no findings[/]")
        return
    console.print(findings_table(findings, f"{step}: findings (unresolved = still in the data after --fix)", unresolved))
    worst = [f for f in unresolved if f.severity >= Severity.WARNING]
    console.print(
        f"[bold cyan]{step:>8}[/] {len(unresolved):,} of {len(findings):,} findings unresolved "
        f"({len(worst):,} at warning or above); details: {step} report.html"
    )


@app.command("run")
@guarded
def run_pipeline(
    config: Path = typer.Argument(..., help="tunerail.yaml describing data, model, criteria and budget."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default: runs/<project> beside the config)."),
    force: bool = typer.Option(False, "--force", help="Re-run every step even if its inputs did not change."),
    allow_criteria_change: bool = typer.Option(
        False,
        "--allow-criteria-change",
        help=("Accept criteria changed after the test set was frozen (recorded; the verdict cannot be READY)."),
    ),
    resume: bool = typer.Option(
        False, "--resume", help=("Continue an interrupted training (crash, kill, budget stop) from its last checkpoint.")
    ),
    verbose: bool = typer.Option(False, "--verbose", help=VERBOSE_HELP),
) -> None:
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

    result = run(
        config,
        out_dir=out,
        force=force,
        allow_criteria_change=allow_criteria_change,
        resume=resume,
        on_event=on_event,
        progress=step_progress,
        on_findings=print_doctor_summary,
    )
    table = Table(title="tunerail run", show_lines=False)
    for column in ("step", "status", "seconds"):
        table.add_column(column)
    for step in result.steps:
        table.add_row(step.name, "cached" if step.skipped else "ran", f"{step.seconds:.0f}")
    console.print(table)
    if result.model_choice:
        console.print(f"base model: [bold]{escape(result.model_choice['trained'])}[/] ({escape(str(result.model_choice['reason']))})")
    colour = "green" if result.verdict == "READY" else "red"
    console.print(f"verdict: [bold {colour}]{result.verdict}[/]   report: {result.report}")
    if result.verdict != "READY":
        raise typer.Exit(1)
