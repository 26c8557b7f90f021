"""`tunerail verify`, `lineage` and `log`: the content-addressed store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from tunerail.cli._common import (
    _human,
    _store_for,
    app,
    console,
    guarded,
)
from tunerail.config import field_help


@app.command("verify")
@guarded
def verify_cmd(
    target: Optional[str] = typer.Argument(
        None, help="Store root, exported folder, split folder, run folder, or artifact id (default: the whole store)."
    ),
    store: Optional[Path] = typer.Option(None, "--store", help=field_help("store.path")),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (store.path)."),
) -> None:
    """Re-hash stored files; name every corrupted or missing one (exit 1 if any)."""
    from tunerail.store import EXPORT_MANIFEST, verify_folder

    path = Path(target) if target else None
    if path is not None and path.is_dir() and (path / EXPORT_MANIFEST).exists():
        artifact, problems = verify_folder(path)
        checked = f"exported {artifact.kind} {artifact.short_id} ({len(artifact.files)} files)"
    elif path is not None and path.is_dir() and ((path / "train.json").is_file() or (path / "train" / "train.json").is_file()):
        from tunerail.serve.run import run_problems

        checked, problems = run_problems(path, config)
        checked += " (against the store's copies)"
    elif path is not None and path.is_dir() and (path / "split.json").exists():
        from tunerail.split.frozen import split_problems

        problems = split_problems(path, _store_for(store, config) if store or config else None)
        checked = f"split folder {path} (split.json and every split file against the store's split record)"
    else:
        if path is not None and path.is_dir():
            st, ref = _store_for(path, None, must_exist=True), None
        else:
            st, ref = _store_for(store, config, must_exist=True), target
        artifacts = [st.get(ref)] if ref else st.list(skip_unreadable=True)  # verify names the unreadable ones
        problems = st.verify(ref)
        checked = (
            f"{len(artifacts)} artifact(s), {sum(len(a.files) for a in artifacts):,} files, "
            f"{_human(sum(a.size for a in artifacts))} in {st.root}"
        )
    for problem in problems:
        console.print(f"[red]{escape(str(problem))}[/]", highlight=False, soft_wrap=True)
    if problems:
        console.print(f"[bold red]{len(problems)} problem(s)[/] in {checked}")
        raise typer.Exit(1)
    console.print(f"[green]ok[/]: {checked}: every file matches its recorded SHA-256")


@app.command("lineage")
@guarded
def lineage_cmd(
    ref: str = typer.Argument(..., help="Artifact id or unique prefix."),
    store: Optional[Path] = typer.Option(None, "--store", help=field_help("store.path")),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (store.path)."),
) -> None:
    """Print the chain source files -> snapshot -> split -> config -> run -> checkpoint -> report."""
    st = _store_for(store, config)
    chain = st.lineage(ref)
    step = 0
    for artifact in chain:
        for source, info in (artifact.meta.get("sources") or {}).items() if artifact.kind == "dataset" else ():
            sha = info.get("sha256", "") if isinstance(info, dict) else str(info)
            typer.echo(f"{'  ' * step}source   {source}  sha256 {sha[:12]}")
            step = 1
        if artifact.kind == "dataset" and isinstance(hub := artifact.meta.get("hub"), dict):  # a Hub dataset: its commit
            typer.echo(f"source   hub {hub.get('id')} ({hub.get('subset') or 'default'}/{hub.get('split')})  commit {hub.get('commit')}")
            step = 1
        extra = []
        if "rows" in artifact.meta:
            extra.append(f"{artifact.meta['rows']:,} rows")
        if "sizes" in artifact.meta:
            sizes = artifact.meta["sizes"]
            extra.append(" / ".join(f"{k} {sizes[k]:,}" for k in sorted(sizes, key=lambda k: (k != "train", k == "test", k))))
        if artifact.meta.get("forced"):
            extra.append("FORCED")
        typer.echo(
            f"{'  ' * step}{'└─ ' if step else ''}{artifact.kind:<10} {artifact.short_id}  "
            f"{artifact.transform or '-':<10} {artifact.created}  {_human(artifact.size)}" + (f"  ({'; '.join(extra)})" if extra else "")
        )
        step += 1
    children = st.children(ref)
    if children:
        typer.echo("used by: " + ", ".join(f"{c.kind} {c.short_id}" for c in children))


@app.command("log")
@guarded
def log_cmd(
    store: Optional[Path] = typer.Option(None, "--store", help=field_help("store.path")),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (store.path)."),
    kind: Optional[str] = typer.Option(None, "--kind", help="Only this kind (dataset, split, run, checkpoint...)."),
) -> None:
    """List stored snapshots, splits, runs and checkpoints: date, kind, short id, size."""
    from rich.table import Table

    st = _store_for(store, config, must_exist=True)
    artifacts = st.list(kind)
    table = Table(title=f"store {st.root}")
    for col in ("created", "kind", "id", "transform", "files", "size", "rows", "parents"):
        table.add_column(col, justify="right" if col in ("files", "size", "rows") else "left")
    for a in artifacts:
        rows = a.meta.get("rows", a.meta.get("data", {}).get("rows") if isinstance(a.meta.get("data"), dict) else None)
        table.add_row(
            a.created,
            a.kind,
            a.short_id,
            escape(a.transform or "-"),
            str(len(a.files)),
            _human(a.size),
            f"{rows:,}" if isinstance(rows, int) else "",
            ", ".join(p[:12] for p in a.parents),
        )
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    console.print(f"{len(artifacts)} artifact(s)")


# --- train (issue 4) --------------------------------------------------------------------
