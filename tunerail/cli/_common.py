"""What every command module shares: the app, the stderr console, the error guard, progress bars.

Exit codes: 0 ok, 1 findings at or above ``--fail-on`` (or a NOT READY verdict), 2 could not run.
Summaries go to stderr; no command imports torch before it needs it.
"""

from __future__ import annotations

import functools
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape

from tunerail.errors import Problem, TunerailError

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

    Anything unexpected (a bug, or an input no check foresaw) becomes one line naming the
    exception, the file involved and the log holding the traceback; still exit 2, because
    exit 1 means "findings".

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
            console.print("[bold red]error:[/]", escape(str(exc)), highlight=False, soft_wrap=True)  # paths stay whole
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the one top-level handler
            report_unexpected(exc, [v for v in kwargs.values() if isinstance(v, Path)])
            raise typer.Exit(2) from None

    return wrapper


def report_unexpected(exc: BaseException, paths: list[Path]) -> Path | None:
    """Print a one-line message for an unexpected exception and write its traceback to a log file."""
    import time
    import traceback

    from tunerail.models import cache_root

    involved = getattr(exc, "filename", None) or ", ".join(str(p) for p in paths) or "no file"
    path = cache_root() / "logs" / f"tunerail-{time.strftime('%Y%m%d-%H%M%S')}.log"
    log: Path | None = path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("".join(traceback.format_exception(exc)))
    except OSError:
        log = None
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    console.print(
        f"[bold red]error:[/] {escape(type(exc).__name__)}: {escape(text[:300])} (file: {escape(str(involved))}); "
        + (f"traceback in {escape(str(log))}" if log else "no log could be written"),
        highlight=False,
        soft_wrap=True,
    )
    return log


def load_config_or_default(config: Optional[Path]) -> Any:
    from tunerail.config import load_config

    return load_config(config)


_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


class FailOn(str, Enum):
    """--fail-on: exit 1 when a finding at or above this severity exists (the same choice in every command)."""

    error = "error"
    warning = "warning"
    info = "info"


def _store_for(store: Optional[Path], config: Optional[Path], must_exist: bool = False) -> Any:
    """The store named by --store, else the config's store.path (relative to the config file).

    ``must_exist``: a mistyped path must not read as an empty, healthy store ("ok: 0 artifacts").
    """
    from tunerail.store import Store

    if store is not None:
        found = Store(store)
    else:
        cfg = load_config_or_default(config)
        found = Store(cfg.resolve(cfg.store.path) or cfg.store.path)
    if must_exist and not found.manifests.is_dir():
        raise TunerailError(
            Problem(
                "no store here (no manifests/ folder)",
                file=str(found.root),
                fix="check --store / store.path; a store is created by `tunerail split` or `train`",
            )
        )
    return found


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def _print_verdict(result: Any) -> None:
    from tunerail.findings import Severity

    for model in result.metrics:
        est = result.metrics[model].get(result.metric)  # a baseline may not compute every metric (perplexity)
        if est is not None:
            console.print(f"{model:>20}: {result.metric} {est['value']:.4f} [{est['low']:.3f}, {est['high']:.3f}]")
    if result.improvement:
        imp = result.improvement
        versus = getattr(result, "reference", None) or "base"
        console.print(
            f"{'improvement':>20}: {imp['value']:+.4f} [{imp['low']:+.3f}, {imp['high']:+.3f}] vs {versus}"
            + (f", p = {imp['p_value']:.3g}" if "p_value" in imp else "")
        )
    for b in getattr(result, "baselines", None) or []:
        d = b.get("difference")  # the verdict's decoding (label trie, span copy) minus free generation
        if d:
            decoding = (getattr(result, "prompt", None) or {}).get("verdict_decoding", "constrained")
            console.print(f"{'decoding':>20}: {decoding} - free {d['value']:+.4f} [{d['low']:+.3f}, {d['high']:+.3f}] (paired)")
    for f in result.findings:
        sev = f.severity
        colour = {"error": "red", "warning": "yellow", "info": "green"}[sev.value]
        label = "pass" if sev == Severity.INFO else sev.value
        console.print(f"[{colour}]{label:>7}[/] {f.code} {escape(f.message)}", highlight=False)
    colour = "green" if result.ready else "red"
    console.print(f"[bold {colour}]{result.verdict}[/]  report: {escape(str(result.report_html))}")


def _bar(*lead: Any) -> Any:
    """A transient rich progress bar on stderr: the given leading columns, then bar, n/m and elapsed time."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    tail = (BarColumn(), MofNCompleteColumn()) + ((TextColumn("{task.description}"),) if lead else ())
    columns = lead or (TextColumn("{task.description}"),)
    return Progress(*columns, *tail, TimeElapsedColumn(), console=console, transient=True)


def _checks_progress(label: str) -> Any:
    """One bar fed by ``progress(item, done, total)``: the item shows as its description."""
    import contextlib

    from rich.progress import TextColumn

    @contextlib.contextmanager
    def ctx() -> Any:
        with _bar(TextColumn(f"[bold]{label}[/]")) as bar:
            task = bar.add_task("loading", total=None)

            def update(item: str, done: int, total: int) -> None:
                bar.update(task, description=escape(item), completed=done, total=total)

            yield update

    return ctx()


def _progress() -> Any:
    """A bar per stage, fed by the eval's ``progress(stage, done, total)`` callback."""
    import contextlib

    @contextlib.contextmanager
    def ctx() -> Any:
        bar = _bar()
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks or bar.tasks[tasks[stage]].finished:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        with bar:
            yield update

    return ctx()
