"""`tunerail init` and `tunerail config`: write and validate a project config."""

from __future__ import annotations

from pathlib import Path

import typer

from tunerail.cli._common import (
    app,
    console,
    guarded,
    load_config_or_default,
)
from tunerail.errors import Problem, TunerailError


@app.command()
@guarded
def init(
    path: Path = typer.Argument(Path("tunerail.yaml"), help="Where to write the starter config (a folder: FOLDER/tunerail.yaml)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented starter config (every key documented, safe defaults)."""
    from tunerail.config import STARTER_CONFIG
    from tunerail.io import write_atomic

    if path.is_dir():  # `tunerail init my-project/`: the config goes inside the folder
        path = path / "tunerail.yaml"
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
