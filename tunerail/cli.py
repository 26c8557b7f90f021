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


@app.command("eval")
@guarded
def eval_cmd(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (criteria, prompts, eval settings)."),
    test: Path = typer.Option(..., "--test", help="Frozen test file (test.jsonl from `tunerail split`)."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="LoRA adapter folder from `tunerail train`."),
    split_json: Optional[Path] = typer.Option(None, "--split-json", help="split.json: refuses a changed test set, flags edited criteria."),
    train_json: Optional[Path] = typer.Option(None, "--train-json", help="train.json: loss curves in the report."),
    out: Path = typer.Option(Path("eval-report"), "--out", help="Folder for report.html, report.json, review.csv."),
    prompts: bool = typer.Option(False, "--prompts", help="First compare the prompt variants on the validation set; use the best."),
    validation: Optional[Path] = typer.Option(None, "--validation", help="Validation file for --prompts (default: validation.jsonl beside --test)."),
    base: Optional[str] = typer.Option(None, "--base", help="Override model.base."),
) -> None:
    """Evaluate base and fine-tuned model on the frozen test set; exit 1 on NOT READY."""
    from tunerail.eval import compare_prompts, evaluate

    cfg = load_config_or_default(config)
    with _progress() as progress:
        comparison = None
        if prompts:
            val = validation or test.parent / "validation.jsonl"
            if not val.exists():
                from tunerail.errors import Problem

                raise TunerailError(Problem("validation file not found", file=str(val),
                                            fix="pass --validation PATH (prompt variants are compared on validation, never on test)"))
            comparison = compare_prompts(cfg, val, adapter_dir=adapter, base_model=base, progress=progress)
            cfg.eval.prompt_version = comparison["chosen"]
            for v in comparison["variants"]:
                console.print(f"prompt {escape(v['version'])}: {cfg.criteria.metric} {v['value']:.4f} "
                              f"[{v['low']:.3f}, {v['high']:.3f}]")
        result = evaluate(cfg, test_data=test, adapter_dir=adapter, base_model=base, out_dir=out,
                          train_json=train_json, split_json=split_json, progress=progress, prompt_comparison=comparison)
    _print_verdict(result)
    if not result.ready:
        raise typer.Exit(1)


def _print_verdict(result: Any) -> None:
    from tunerail.findings import Severity

    for model in result.metrics:
        est = result.metrics[model][result.metric]
        console.print(f"{model:>14}: {result.metric} {est['value']:.4f} [{est['low']:.3f}, {est['high']:.3f}]")
    if result.improvement:
        imp = result.improvement
        console.print(f"   improvement: {imp['value']:+.4f} [{imp['low']:+.3f}, {imp['high']:+.3f}]"
                      + (f", p = {imp['p_value']:.3g}" if "p_value" in imp else ""))
    for f in result.findings:
        sev = Severity(f.severity)
        colour = {"error": "red", "warning": "yellow", "info": "green"}[sev.value]
        label = "pass" if sev == Severity.INFO else sev.value
        console.print(f"[{colour}]{label:>7}[/] {f.code} {escape(f.message)}", highlight=False)
    colour = "green" if result.ready else "red"
    console.print(f"[bold {colour}]{result.verdict}[/]  report: {escape(str(result.report_html))}")


def _progress() -> Any:
    """A rich progress bar on stderr fed by the eval's ``progress(stage, done, total)`` callback."""
    import contextlib

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    @contextlib.contextmanager
    def ctx() -> Any:
        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=console, transient=True)
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks or bar.tasks[tasks[stage]].finished:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        with bar:
            yield update

    return ctx()


review_app = typer.Typer(help="Human review of evaluation outputs.", no_args_is_help=True)
app.add_typer(review_app, name="review")


@review_app.command("import")
@guarded
def review_import(path: Path = typer.Argument(..., help="review.csv/.jsonl filled in by raters.")) -> None:
    """Read ratings back: mean rating per model (answers were blinded as A/B)."""
    import json

    from tunerail.review import import_ratings

    summary = import_ratings(path)
    typer.echo(json.dumps(summary, indent=2))
    console.print(f"{summary['rated']} of {summary['rows']} rows rated")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (testable without a subprocess)."""
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
