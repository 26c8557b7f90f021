"""`tunerail train`: LoRA fine-tuning with the guardrails on."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tunerail.cli._common import (
    VERBOSE_HELP,
    app,
    console,
    guarded,
    load_config_or_default,
)
from tunerail.errors import Problem, TunerailError


@app.command("train")
@guarded
def train_command(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (default: built-in defaults)."),
    train_path: Optional[Path] = typer.Option(None, "--train", help="Training split (JSONL written by `tunerail split`)."),
    validation_path: Optional[Path] = typer.Option(None, "--validation", help="Validation split (required unless the guard is off)."),
    out: Path = typer.Option(Path(".tunerail/runs/train"), "--out", "-o", help="Run folder: checkpoints, best adapter, train.json."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --out (after a crash or kill)."),
    verbose: bool = typer.Option(False, "--verbose", help=VERBOSE_HELP),
) -> None:
    """Fine-tune with LoRA, every guardrail on: lint, early stopping, divergence, budget, tracking."""

    from tunerail.io import check_out_dir

    check_out_dir(out)  # before the model loads
    cfg = load_config_or_default(config)
    if train_path is None:
        raise TunerailError(
            Problem(
                "no training split given", field="--train", fix="pass --train PATH --validation PATH (the files `tunerail split` writes)"
            )
        )
    from tunerail.train.progress import RichProgress

    with RichProgress(console) as progress:
        from tunerail.train import train as run_training

        result = run_training(cfg, train_data=train_path, validation_data=validation_path, out_dir=out, resume=resume, progress=progress)
    progress.summary(result)


# --- eval and run (issue 5) -------------------------------------------------------------
