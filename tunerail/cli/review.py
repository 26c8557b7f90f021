"""`tunerail review ...`: human review of evaluation outputs."""

from __future__ import annotations

from pathlib import Path

import typer

from tunerail.cli._common import app, console, guarded

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
