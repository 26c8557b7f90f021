"""`tunerail doctor`: audit a dataset."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from tunerail.cli._common import (
    _SEVERITY_STYLE,
    FailOn,
    _checks_progress,
    app,
    console,
    guarded,
    load_config_or_default,
)
from tunerail.data.hub import source_for
from tunerail.errors import Problem, TunerailError
from tunerail.findings import Finding


def findings_table(findings: list[Finding], title: str, unresolved: list[Finding] | None = None) -> Any:
    """The doctor's summary table: one row per check (code, worst severity, findings, rows affected).

    With ``unresolved`` (what ``--fix`` left in the data), a column says how many findings remain.
    """
    from rich.table import Table

    from tunerail.doctor.result import findings_by_check

    left = Counter(f.check for f in unresolved) if unresolved is not None else None
    table = Table(title=title, title_justify="left")
    columns = [("check", "left"), ("code", "left"), ("severity", "left"), ("findings", "right"), ("rows", "right")]
    groups = findings_by_check(findings)
    longest_check = max((len(g["check"]) for g in groups), default=5)
    for column, justify in columns + ([("unresolved", "right")] if left is not None else []):
        # Check names and codes are what users search the docs for: never cut, even at 80 columns.
        whole = {"min_width": longest_check, "no_wrap": True} if column == "check" else {"no_wrap": True} if column == "code" else {}
        table.add_column(column, justify=justify, **whole)  # type: ignore[arg-type]
    for g in groups:
        style = _SEVERITY_STYLE[g["severity"]]
        cells = [escape(g["check"]), g["code"], f"[{style}]{g['severity']}[/]", f"{g['findings']:,}", f"{g['rows']:,}"]
        table.add_row(*cells, *([f"{left.get(g['check'], 0):,}"] if left is not None else []))
    return table


@app.command("doctor")
@guarded
def doctor_command(
    data: Optional[Path] = typer.Argument(
        None, help="Data file, datasets folder or Hub dataset id (owner/name); optional when --config sets data.path."
    ),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (format, columns, model, thresholds)."),
    out: Path = typer.Option(
        Path("doctor-report"), "--out", "-o", help="Folder for findings.json, report.html, run.json (and the --fix files)."
    ),
    fix: bool = typer.Option(
        False, "--fix", help="Write clean.jsonl (safe fixes applied) and quarantine.jsonl (every removed row, with its reason)."
    ),
    fail_on: FailOn = typer.Option(FailOn.error, "--fail-on", help="Exit 1 when a finding at or above this severity exists."),
    no_semantic: bool = typer.Option(False, "--no-semantic", help="Skip the embedding checks (no encoder needed; recorded in the report)."),
    test: Optional[Path] = typer.Option(None, "--test", help="Frozen test file: flag preference pairs whose prompt is a test prompt."),
) -> None:
    """Audit a dataset before spending compute: format, duplicates, lengths, PII, language, balance..."""
    from tunerail.doctor import doctor

    cfg = load_config_or_default(config)
    path = data or source_for(cfg)
    if path is None:
        raise TunerailError(Problem("no data to audit", fix="pass DATA, or set data.path in the config given with --config"))
    with _checks_progress("doctor") as progress:
        result = doctor(
            path, cfg if config else None, out_dir=out, fix=fix, semantic=False if no_semantic else None, progress=progress, test=test
        )

    if result.findings:
        console.print(findings_table(result.findings, f"doctor: {escape(str(path))} ({result.format}, {result.rows_in:,} rows)"))
    else:
        console.print(f"[green]no findings[/] in {escape(str(path))} ({result.rows_in:,} rows)")
    sev = result.summary["by_severity"]
    console.print(
        f"[bold red]{sev['error']} error(s)[/], [yellow]{sev['warning']} warning(s)[/], {sev['info']} info; "
        f"{result.summary['rows_affected']:,} of {result.rows_in:,} rows affected"
    )
    for s in result.skipped:
        console.print(f"[dim]skipped {s.name} ({s.code}): {escape(s.reason)}[/]")
    if result.fix is not None:
        fx = result.fix.summary()
        console.print(
            f"rows in {fx['rows_in']:,} = kept {fx['kept']:,} + quarantined {fx['quarantined']:,}"
            + (f" (personal data masked in {fx['masked_rows']:,} rows)" if fx["masked_rows"] else "")
        )
    console.print(f"wrote [bold]{escape(str(out))}[/]: " + ", ".join(sorted(p.name for p in result.files.values())))
    if result.fails(fail_on.value):
        console.print(f"[red]failing: findings at or above '{fail_on.value}'[/]")
        raise typer.Exit(1)


# --- split, leakage, store (issue 3) ----------------------------------------------------
