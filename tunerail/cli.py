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


# --- split, leakage, store (issue 3) ----------------------------------------------------


# --- train (issue 4) --------------------------------------------------------------------


@app.command("train")
@guarded
def train_command(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (default: built-in defaults)."),
    train_path: Optional[Path] = typer.Option(None, "--train", help="Training split (JSONL written by `tunerail split`)."),
    validation_path: Optional[Path] = typer.Option(None, "--validation", help="Validation split (required unless the guard is off)."),
    out: Path = typer.Option(Path(".tunerail/runs/train"), "--out", "-o", help="Run folder: checkpoints, best adapter, train.json."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --out (after a crash or kill)."),
) -> None:
    """Fine-tune with LoRA, every guardrail on: lint, early stopping, divergence, budget, tracking."""
    from tunerail.errors import Problem

    cfg = load_config_or_default(config)
    if train_path is None:
        raise TunerailError(Problem("no training split given", field="--train",
                                    fix="pass --train PATH --validation PATH (the files `tunerail split` writes)"))
    from tunerail.train.progress import RichProgress

    with RichProgress(console) as progress:
        from tunerail.train import train as run_training

        result = run_training(cfg, train_data=train_path, validation_data=validation_path, out_dir=out,
                              resume=resume, progress=progress)
    progress.summary(result)


# --- eval and run (issue 5) -------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (testable without a subprocess)."""
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
