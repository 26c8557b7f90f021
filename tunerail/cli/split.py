"""`tunerail split` and `tunerail leakage`: leakage-safe splits and contamination checks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from tunerail.cli._common import (
    FailOn,
    _store_for,
    app,
    console,
    guarded,
    load_config_or_default,
)
from tunerail.config import field_help
from tunerail.data.hub import source_for
from tunerail.errors import Problem, TunerailError


@app.command("split")
@guarded
def split_cmd(
    data: Optional[Path] = typer.Argument(None, help="Data file to split (default: data.path in the config)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (split, data, criteria sections)."),
    out: Path = typer.Option(Path("split"), "--out", "-o", help="Folder for train/validation/test.jsonl and split.json."),
    force: bool = typer.Option(False, "--force", help="Accept too-small validation/test sets (recorded in split.json)."),
    store: Optional[Path] = typer.Option(None, "--store", help=field_help("store.path")),
    allow_criteria_change: bool = typer.Option(
        False,
        "--allow-criteria-change",
        help=("Accept criteria that differ from those frozen with this test set (recorded; the verdict cannot be READY)."),
    ),
) -> None:
    """Grouped, stratified, seeded split; duplicate clusters and groups never cross splits; test is frozen."""
    from tunerail.split import split

    cfg = load_config_or_default(config)
    source = data or source_for(cfg)
    if source is None:
        raise TunerailError(Problem("no data to split", field="data.path", fix="pass DATA or set data.path in the config"))
    result = split(source, cfg, out_dir=out, force=force, store=_store_for(store, config), allow_criteria_change=allow_criteria_change)
    g = result.groups
    console.print(
        f"split {result.manifest['data']['rows']:,} rows -> "
        + ", ".join(f"{name} {n:,} ({result.manifest['shares'][name]:.1%})" for name, n in result.sizes.items())
    )
    console.print(
        f"kept together: {g['multi_row_groups']:,} clusters/groups ({g['rows_in_multi_row_groups']:,} rows): "
        + ", ".join(f"{k} {v['clusters']:,}" for k, v in g["by_source"].items() if k != "all")
    )
    console.print(
        f"test CI half-width +/-{result.manifest['test_ci_half_width']:.3f} "
        f"(margin {result.manifest['criteria']['margin']}); frozen test sha256 {result.hashes['test.jsonl'][:12]}"
    )
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    console.print(
        f"wrote [bold]{out}[/] (split.json); store: dataset {(result.dataset_id or '')[:12]}, split {(result.split_id or '')[:12]}"
    )


@app.command("leakage")
@guarded
def leakage_cmd(
    sets: list[Path] = typer.Argument(..., help="Two or more data files; each later one is checked against the earlier ones."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for leakage.json and leakage.html."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (data columns, thresholds)."),
    fail_on: FailOn = typer.Option(FailOn.error, "--fail-on", help="Exit 1 when findings at or above this severity exceed --max-leaks."),
    max_leaks: int = typer.Option(0, "--max-leaks", help="Leaking pairs tolerated before exit 1."),
    semantic: bool = typer.Option(True, "--semantic/--no-semantic", help="Embedding paraphrase check (one MiniLM pass, cached)."),
    near_threshold: Optional[float] = typer.Option(None, "--near-threshold", help=field_help("doctor.near_duplicate_threshold")),
    semantic_threshold: Optional[float] = typer.Option(None, "--semantic-threshold", help=field_help("split.semantic_threshold")),
) -> None:
    """Exact, 13-gram, MinHash and paraphrase leaks between sets; exit 1 when leaks exceed the threshold."""
    import json

    from tunerail.split.leakage import leakage

    names: dict[str, Path] = {}
    for path in sets:
        name = path.stem if path.stem not in names else str(path)
        names[name] = path
    result = leakage(
        names,
        out_dir=out,
        config=load_config_or_default(config),
        fail_on=fail_on.value,
        max_leaks=max_leaks,
        semantic="auto" if semantic else False,
        near_threshold=near_threshold,
        semantic_threshold=semantic_threshold,
    )
    from rich.table import Table

    table = Table(title="leakage per pair of sets")
    for col in ("A", "B", "leaking pairs", "rows of B", "share of B", "by method"):
        table.add_column(col, justify="right" if col in ("leaking pairs", "rows of B", "share of B") else "left")
    for s in result.summary:
        table.add_row(
            escape(s["a"]),
            escape(s["b"]),
            f"{s['leaking_pairs']:,}",
            f"{s['rows_b_leaking']:,}/{s['rows_b']:,}",
            f"{s['share_of_b']:.1%}",
            ", ".join(f"{k} {v}" for k, v in s["by_method"].items()),
        )
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
