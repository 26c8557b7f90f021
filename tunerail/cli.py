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
    from tunerail.io import write_atomic

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
    from rich.table import Table

    from tunerail.doctor import doctor
    from tunerail.errors import Problem

    cfg = load_config_or_default(config)
    path = data or cfg.resolve(cfg.data.path)
    if path is None:
        raise TunerailError(Problem("no data to audit", fix="pass DATA, or set data.path in the config given with --config"))
    with _checks_progress("doctor") as progress:
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


@app.command("split")
@guarded
def split_cmd(data: Optional[Path] = typer.Argument(None, help="Data file to split (default: data.path in the config)."),
              config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (split, data, criteria sections)."),
              out: Path = typer.Option(Path("split"), "--out", "-o", help="Folder for train/validation/test.jsonl and split.json."),
              force: bool = typer.Option(False, "--force", help="Accept too-small validation/test sets (recorded in split.json)."),
              store: Optional[Path] = typer.Option(None, "--store", help="Store root (default: store.path in the config).")) -> None:
    """Grouped, stratified, seeded split; duplicate clusters and groups never cross splits; test is frozen."""
    from tunerail.errors import Problem
    from tunerail.split import split

    cfg = load_config_or_default(config)
    data = data or cfg.resolve(cfg.data.path)
    if data is None:
        raise TunerailError(Problem("no data to split", field="data.path", fix="pass DATA or set data.path in the config"))
    result = split(data, cfg, out_dir=out, force=force, store=_store_for(store, config))
    g = result.groups
    console.print(f"split {result.manifest['data']['rows']:,} rows -> " + ", ".join(
        f"{name} {n:,} ({result.manifest['shares'][name]:.1%})" for name, n in result.sizes.items()))
    console.print(f"kept together: {g['multi_row_groups']:,} clusters/groups ({g['rows_in_multi_row_groups']:,} rows): "
                  + ", ".join(f"{k} {v['clusters']:,}" for k, v in g["by_source"].items() if k != "all"))
    console.print(f"test CI half-width +/-{result.manifest['test_ci_half_width']:.3f} "
                  f"(margin {result.manifest['criteria']['margin']}); frozen test sha256 {result.hashes['test.jsonl'][:12]}")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    console.print(f"wrote [bold]{out}[/] (split.json); store: dataset {result.dataset_id[:12]}, split {result.split_id[:12]}")


@app.command("leakage")
@guarded
def leakage_cmd(sets: list[Path] = typer.Argument(..., help="Two or more data files; each later one is checked against the earlier ones."),
                out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for leakage.json and leakage.html."),
                config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (data columns, thresholds)."),
                fail_on: str = typer.Option("error", "--fail-on", help="Exit 1 when findings at or above this severity exceed --max-leaks."),
                max_leaks: int = typer.Option(0, "--max-leaks", help="Leaking pairs tolerated before exit 1."),
                semantic: bool = typer.Option(True, "--semantic/--no-semantic", help="Embedding paraphrase check (one MiniLM pass, cached)."),
                near_threshold: Optional[float] = typer.Option(None, "--near-threshold", help="MinHash Jaccard threshold (default: doctor.near_duplicate_threshold)."),
                semantic_threshold: Optional[float] = typer.Option(None, "--semantic-threshold", help="Cosine threshold (default: split.semantic_threshold).")) -> None:
    """Exact, 13-gram, MinHash and paraphrase leaks between sets; exit 1 when leaks exceed the threshold."""
    import json

    from tunerail.errors import Problem
    from tunerail.split.leakage import leakage

    if fail_on not in ("info", "warning", "error"):
        raise TunerailError(Problem(f"--fail-on {fail_on!r}", fix="use info, warning or error"))
    names: dict[str, Path] = {}
    for path in sets:
        name = path.stem if path.stem not in names else str(path)
        names[name] = path
    result = leakage(names, out_dir=out, config=load_config_or_default(config), fail_on=fail_on, max_leaks=max_leaks,
                     semantic="auto" if semantic else False, near_threshold=near_threshold,
                     semantic_threshold=semantic_threshold)
    from rich.table import Table

    table = Table(title="leakage per pair of sets")
    for col in ("A", "B", "leaking pairs", "rows of B", "share of B", "by method"):
        table.add_column(col, justify="right" if col in ("leaking pairs", "rows of B", "share of B") else "left")
    for s in result.summary:
        table.add_row(escape(s["a"]), escape(s["b"]), f"{s['leaking_pairs']:,}", f"{s['rows_b_leaking']:,}/{s['rows_b']:,}",
                      f"{s['share_of_b']:.1%}", ", ".join(f"{k} {v}" for k, v in s["by_method"].items()))
    Console(stderr=True, width=None if sys.stderr.isatty() else 140).print(table)
    for f in result.findings[:10]:
        console.print(f"  [red]{f.code}[/] {escape(f.message)}", highlight=False, soft_wrap=True)
    if len(result.findings) > 10:
        console.print(f"  ... {len(result.findings) - 10:,} more" + (f" in {out / 'leakage.json'}" if out else ""))
    if out:
        console.print(f"wrote [bold]{out / 'leakage.json'}[/] and leakage.html")
    else:
        typer.echo(json.dumps(result.summary, indent=2))
    if result.failed:
        raise typer.Exit(1)


@app.command("verify")
@guarded
def verify_cmd(target: Optional[str] = typer.Argument(None, help="Store root, exported folder, split folder, or artifact id (default: the whole store)."),
               store: Optional[Path] = typer.Option(None, "--store", help="Store root (default: store.path in the config)."),
               config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (store.path).")) -> None:
    """Re-hash stored files; name every corrupted or missing one (exit 1 if any)."""
    from tunerail.store import EXPORT_MANIFEST, Store, verify_folder

    path = Path(target) if target else None
    if path is not None and path.is_dir() and (path / EXPORT_MANIFEST).exists():
        artifact, problems = verify_folder(path)
        checked = f"exported {artifact.kind} {artifact.short_id} ({len(artifact.files)} files)"
    elif path is not None and path.is_dir() and (path / "split.json").exists():
        from tunerail.split.frozen import split_problems

        problems = split_problems(path)
        checked = f"split folder {path} (frozen test set and the other splits against split.json)"
    else:
        if path is not None and path.is_dir():
            st, ref = Store(path), None
        else:
            st, ref = _store_for(store, config), target
        artifacts = [st.get(ref)] if ref else st.list()
        problems = st.verify(ref)
        checked = (f"{len(artifacts)} artifact(s), {sum(len(a.files) for a in artifacts):,} files, "
                   f"{_human(sum(a.size for a in artifacts))} in {st.root}")
    for problem in problems:
        console.print(f"[red]{escape(str(problem))}[/]", highlight=False, soft_wrap=True)
    if problems:
        console.print(f"[bold red]{len(problems)} problem(s)[/] in {checked}")
        raise typer.Exit(1)
    console.print(f"[green]ok[/]: {checked}: every file matches its recorded SHA-256")


@app.command("lineage")
@guarded
def lineage_cmd(ref: str = typer.Argument(..., help="Artifact id or unique prefix."),
                store: Optional[Path] = typer.Option(None, "--store", help="Store root (default: store.path in the config)."),
                config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (store.path).")) -> None:
    """Print the chain source files -> snapshot -> split -> config -> run -> checkpoint -> report."""
    st = _store_for(store, config)
    chain = st.lineage(ref)
    step = 0
    for artifact in chain:
        for source, info in (artifact.meta.get("sources") or {}).items() if artifact.kind == "dataset" else ():
            sha = info.get("sha256", "") if isinstance(info, dict) else str(info)
            typer.echo(f"{'  ' * step}source   {source}  sha256 {sha[:12]}")
            step = 1
        extra = []
        if "rows" in artifact.meta:
            extra.append(f"{artifact.meta['rows']:,} rows")
        if "sizes" in artifact.meta:
            sizes = artifact.meta["sizes"]
            extra.append(" / ".join(f"{k} {sizes[k]:,}" for k in sorted(sizes, key=lambda k: (k != "train", k == "test", k))))
        if artifact.meta.get("forced"):
            extra.append("FORCED")
        typer.echo(f"{'  ' * step}{'└─ ' if step else ''}{artifact.kind:<10} {artifact.short_id}  "
                   f"{artifact.transform or '-':<10} {artifact.created}  {_human(artifact.size)}"
                   + (f"  ({'; '.join(extra)})" if extra else ""))
        step += 1
    children = st.children(ref)
    if children:
        typer.echo("used by: " + ", ".join(f"{c.kind} {c.short_id}" for c in children))


@app.command("log")
@guarded
def log_cmd(store: Optional[Path] = typer.Option(None, "--store", help="Store root (default: store.path in the config)."),
            config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (store.path)."),
            kind: Optional[str] = typer.Option(None, "--kind", help="Only this kind (dataset, split, run, checkpoint...).")) -> None:
    """List stored snapshots, splits, runs and checkpoints: date, kind, short id, size."""
    from rich.table import Table

    st = _store_for(store, config)
    artifacts = st.list(kind)
    table = Table(title=f"store {st.root}")
    for col in ("created", "kind", "id", "transform", "files", "size", "rows", "parents"):
        table.add_column(col, justify="right" if col in ("files", "size", "rows") else "left")
    for a in artifacts:
        rows = a.meta.get("rows", a.meta.get("data", {}).get("rows") if isinstance(a.meta.get("data"), dict) else None)
        table.add_row(a.created, a.kind, a.short_id, escape(a.transform or "-"), str(len(a.files)), _human(a.size),
                      f"{rows:,}" if isinstance(rows, int) else "", ", ".join(p[:12] for p in a.parents))
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    console.print(f"{len(artifacts)} artifact(s)")



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


def _checks_progress(label: str) -> Any:
    """One rich bar on stderr fed by ``progress(item, done, total)``: the item shows as its description."""
    import contextlib

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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

    def step_progress(step: str) -> Any:
        if step == "train":
            from tunerail.train.progress import RichProgress

            return RichProgress(console)
        return _checks_progress(step) if step == "doctor" else _progress()

    result = run(config, out_dir=out, force=force, on_event=on_event, progress=step_progress)
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
