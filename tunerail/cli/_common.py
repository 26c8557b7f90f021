"""What every command module shares: the app, the stderr console, the error guard, progress bars.

Exit codes: 0 ok, 1 findings at or above ``--fail-on`` (or a NOT READY verdict), 2 could not run.
Summaries go to stderr; no command imports torch before it needs it.
"""

from __future__ import annotations

import functools
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
VERBOSE_HELP = "Let third-party progress bars, log lines and warnings through (quiet by default)."


def guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors into a clear message and exit code 2 instead of a traceback.

    Also the one place every command silences third-party output (``tunerail.logs``); a command
    with a ``verbose`` parameter (``--verbose``) lets it through.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from tunerail.logs import configure

        configure(verbose=bool(kwargs.get("verbose", False)))  # third-party bars/logs off unless --verbose
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


_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


class FailOn(str, __import__("enum").Enum):
    error = "error"
    warning = "warning"
    info = "info"


def _store_for(store: Optional[Path], config: Optional[Path]) -> Any:
    """The store named by --store, else the config's store.path (relative to the config file)."""
    from tunerail.store import Store

    if store is not None:
        return Store(store)
    cfg = load_config_or_default(config)
    return Store(cfg.resolve(cfg.store.path) or cfg.store.path)


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


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


def _checks_progress(label: str) -> Any:
    """One rich bar on stderr fed by ``progress(item, done, total)``: the item shows as its description."""
    import contextlib

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    @contextlib.contextmanager
    def ctx() -> Any:
        with Progress(TextColumn(f"[bold]{label}[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("loading", total=None)

            def update(item: str, done: int, total: int) -> None:
                bar.update(task, description=escape(item), completed=done, total=total)

            yield update

    return ctx()


def _progress() -> Any:
    """A rich progress bar on stderr fed by the eval's ``progress(stage, done, total)`` callback."""
    import contextlib

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

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
