"""The `tunerail` command line: parse, call the step function, render, set the exit code.

Exit codes: 0 ok, 1 findings at or above ``--fail-on`` (or a NOT READY verdict), 2 could not run.
Summaries go to stderr; no command imports torch before it needs it.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape

from tunerail.errors import TunerailError

app = typer.Typer(
    name="tunerail",
    help="Fine-tune LLMs on rails: doctor -> split -> train -> eval, every step checked and recorded.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets (API keys)
    add_completion=False,
)
console = Console(stderr=True)


def guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors into a clear message and exit code 2 instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TunerailError as exc:
            console.print("[bold red]error:[/]", escape(str(exc)), highlight=False)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


def load_config_or_default(config: Optional[Path]) -> Any:
    from tunerail.config import load_config

    return load_config(config)


@app.command()
@guarded
def init(path: Path = typer.Argument(Path("tunerail.yaml"), help="Where to write the starter config."),
         force: bool = typer.Option(False, "--force", help="Overwrite an existing file.")) -> None:
    """Write a commented starter config (every key documented, safe defaults)."""
    from tunerail.config import STARTER_CONFIG
    from tunerail.errors import Problem
    from tunerail.store import write_atomic

    if path.exists() and not force:
        raise TunerailError(Problem("already exists", file=str(path), fix="use --force to overwrite"))
    write_atomic(path, STARTER_CONFIG)
    console.print(f"wrote [bold]{path}[/]: edit data.path and criteria, then `tunerail run {path}`")


@app.command("config")
@guarded
def check_config(config: Path = typer.Argument(..., help="tunerail.yaml to validate.")) -> None:
    """Validate a config and print it with every default filled in."""
    import json

    cfg = load_config_or_default(config)
    typer.echo(json.dumps(cfg.model_dump(mode="json"), indent=2))
    console.print(f"[green]{config} is valid[/]")


# --- doctor (issue 2) -------------------------------------------------------------------


_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


class FailOn(str, __import__("enum").Enum):
    error = "error"
    warning = "warning"
    info = "info"


@app.command("doctor")
@guarded
def doctor_command(
    data: Optional[Path] = typer.Argument(None, help="Data file or datasets folder; optional when --config sets data.path."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (format, columns, model, thresholds)."),
    out: Path = typer.Option(Path("doctor-report"), "--out", "-o", help="Folder for findings.json, report.html, run.json (and the --fix files)."),
    fix: bool = typer.Option(False, "--fix", help="Write clean.jsonl (safe fixes applied) and quarantine.jsonl (every removed row, with its reason)."),
    fail_on: FailOn = typer.Option(FailOn.error, "--fail-on", help="Exit 1 when a finding at or above this severity exists."),
    no_semantic: bool = typer.Option(False, "--no-semantic", help="Skip the embedding checks (no encoder needed; recorded in the report)."),
) -> None:
    """Audit a dataset before spending compute: format, duplicates, lengths, PII, language, balance..."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from tunerail.doctor import doctor
    from tunerail.errors import Problem

    cfg = load_config_or_default(config)
    path = data or cfg.resolve(cfg.data.path)
    if path is None:
        raise TunerailError(Problem("no data to audit", fix="pass DATA, or set data.path in the config given with --config"))
    with Progress(TextColumn("[bold]doctor[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("loading", total=None)

        def progress(name: str, done: int, total: int) -> None:
            bar.update(task, description=escape(name), completed=done, total=total)

        result = doctor(path, cfg if config else None, out_dir=out, fix=fix,
                        semantic=False if no_semantic else None, progress=progress)

    table = Table(title=f"doctor: {escape(str(path))} ({result.format}, {result.rows_in:,} rows)", title_justify="left")
    for column, justify in (("check", "left"), ("code", "left"), ("severity", "left"), ("findings", "right"), ("rows affected", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for g in result.by_check():
        style = _SEVERITY_STYLE[g["severity"]]
        table.add_row(g["check"], g["code"], f"[{style}]{g['severity']}[/]", f"{g['findings']:,}", f"{g['rows']:,}")
    if result.findings:
        console.print(table)
    else:
        console.print(f"[green]no findings[/] in {escape(str(path))} ({result.rows_in:,} rows)")
    sev = result.summary["by_severity"]
    console.print(f"[bold red]{sev['error']} error(s)[/], [yellow]{sev['warning']} warning(s)[/], {sev['info']} info; "
                  f"{result.summary['rows_affected']:,} of {result.rows_in:,} rows affected")
    for s in result.skipped:
        console.print(f"[dim]skipped {s.name} ({s.code}): {escape(s.reason)}[/]")
    if result.fix is not None:
        fx = result.fix.summary()
        console.print(f"rows in {fx['rows_in']:,} = kept {fx['kept']:,} + quarantined {fx['quarantined']:,}"
                      + (f" (personal data masked in {fx['masked_rows']:,} rows)" if fx["masked_rows"] else ""))
    console.print(f"wrote [bold]{escape(str(out))}[/]: " + ", ".join(sorted(p.name for p in result.files.values())))
    if result.fails(fail_on.value):
        console.print(f"[red]failing: findings at or above '{fail_on.value}'[/]")
        raise typer.Exit(1)


# --- split, leakage, store (issue 3) ----------------------------------------------------


# --- train (issue 4) --------------------------------------------------------------------


# --- eval and run (issue 5) -------------------------------------------------------------


# --- the whole pipeline -----------------------------------------------------------------
@app.command("run")
@guarded
def run_pipeline(config: Path = typer.Argument(..., help="tunerail.yaml describing data, model, criteria and budget."),
                 out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default: runs/<project> beside the config)."),
                 force: bool = typer.Option(False, "--force", help="Re-run every step even if its inputs did not change.")) -> None:
    """Run doctor -> split -> leakage -> train -> eval; unchanged steps are skipped; exit 1 if NOT READY."""
    from rich.table import Table

    from tunerail.pipeline import run

    def on_event(step: str, message: str) -> None:
        console.print(f"[bold cyan]{step:>8}[/] {escape(message)}")

    result = run(config, out_dir=out, force=force, on_event=on_event)
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


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (testable without a subprocess)."""
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
