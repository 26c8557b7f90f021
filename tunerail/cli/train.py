"""`tunerail train`: LoRA fine-tuning with the guardrails on."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from tunerail.cli._common import (
    VERBOSE_HELP,
    app,
    console,
    guarded,
    load_config_or_default,
)
from tunerail.config.train import PREFERENCE_METHODS
from tunerail.errors import Problem, TunerailError


# size: train_command: one parameter per typer option of `tunerail train` (typer reads the signature)
@app.command("train")
@guarded
def train_command(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (default: built-in defaults)."),
    train_path: Optional[Path] = typer.Option(None, "--train", help="Training split (JSONL written by `tunerail split`)."),
    validation_path: Optional[Path] = typer.Option(None, "--validation", help="Validation split (required unless the guard is off)."),
    out: Path = typer.Option(Path(".tunerail/runs/train"), "--out", "-o", help="Run folder: checkpoints, best adapter, train.json."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --out (after a crash or kill)."),
    pairs: Optional[Path] = typer.Option(
        None, "--pairs", help="train.method dpo/orpo/kto: a prompt/chosen/rejected file, or an eval folder whose review collected votes."
    ),
    adapter: Optional[Path] = typer.Option(
        None, "--adapter", help="train.method dpo/orpo/kto: the SFT adapter to improve (also the reference of dpo and kto)."
    ),
    test: Optional[Path] = typer.Option(
        None, "--test", help="train.method dpo/orpo/kto: the frozen test file; pairs on its prompts are dropped."
    ),
    verbose: bool = typer.Option(False, "--verbose", help=VERBOSE_HELP),
) -> None:
    """Fine-tune with LoRA, every guardrail on: lint, early stopping, divergence, budget, tracking."""

    from tunerail.io import check_out_dir

    check_out_dir(out)  # before the model loads
    cfg = load_config_or_default(config)
    if cfg.train.method in PREFERENCE_METHODS or pairs is not None:
        _train_preference(cfg, pairs, out, adapter, test, resume)
        return
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


def _train_preference(cfg: Any, pairs: Optional[Path], out: Path, adapter: Optional[Path], test: Optional[Path], resume: bool) -> None:
    """``train.method: dpo | orpo | kto``: pairs from a file or a review folder, then the preference recipe; one line of figures."""
    if cfg.train.method not in PREFERENCE_METHODS or pairs is None:
        missing = "--pairs" if pairs is None else "train.method"
        raise TunerailError(
            Problem(
                f"preference tuning needs train.method: {' | '.join(PREFERENCE_METHODS)} and --pairs",
                field=missing,
                fix="set train.method: dpo (or orpo, kto) in the config and pass --pairs FILE_OR_EVAL_DIR (see `tunerail train --help`)",
            )
        )
    from tunerail.data.preference import load_pairs_file
    from tunerail.review.pairs import review_pairs
    from tunerail.train.preference import train_preference

    pairset = review_pairs(pairs) if pairs.is_dir() else load_pairs_file(pairs)
    result = train_preference(cfg, pairs=pairset, out_dir=out, adapter=adapter, test=test, resume=resume)
    b, a = result.before, result.after
    console.print(
        f"{result.method}: {result.data['train_pairs']} train / {result.data['validation_pairs']} validation pairs "
        f"(dropped {result.data['dropped'] or 'none'}); held-out preference accuracy {b['accuracy']:.3f} -> {a['accuracy']:.3f} "
        f"(95 % CI {a['accuracy_low']:.3f}-{a['accuracy_high']:.3f}), margin {b['margin']:.3f} -> {a['margin']:.3f}; "
        f"{result.stopped_reason} at step {result.actual['steps']} ({result.actual['seconds']:.0f} s over {len(result.actual['sessions'])} session(s))"
    )
    for f in result.findings:
        console.print(f"{f.severity.value} {f.code} {escape(f.message)}")
    console.print(
        f"adapter: [bold]{escape(str(result.adapter_dir))}[/]; next: tunerail eval --test TEST --adapter {escape(str(result.adapter_dir))}"
    )


# --- eval and run (issue 5) -------------------------------------------------------------
