"""`tunerail sweep`: hyperparameter search inside budget.search_share, on one machine or many."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from tunerail.cli._common import app, console, guarded, load_config_or_default
from tunerail.errors import Problem, TunerailError
from tunerail.config import field_help


def _default_split(cfg: Any, name: str) -> Path | None:
    """The split `tunerail run` wrote (runs/<project>/split/<name>.jsonl beside the config), if any."""
    base = Path(cfg.source).parent if cfg.source else Path.cwd()
    path = base / "runs" / cfg.project.name / "split" / f"{name}.jsonl"
    return path if path.exists() else None


@app.command("sweep")
@guarded
def sweep_command(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (sweep, budget and train sections)."),
    trials: Optional[int] = typer.Option(None, "--trials", "-n", min=1, help=field_help("sweep.trials") + " All workers together."),
    storage: Optional[str] = typer.Option(None, "--storage", help=field_help("sweep.storage")),
    study: Optional[str] = typer.Option(None, "--study", help="Study name shared by workers (default: derived from project and inputs)."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Folder for sweep.json, best.yaml, report.html (default runs/<project>/sweep)."
    ),
    train_path: Optional[Path] = typer.Option(None, "--train", help="Training split (default: the one `tunerail run` wrote)."),
    validation_path: Optional[Path] = typer.Option(None, "--validation", help="Validation split (default: the one `tunerail run` wrote)."),
) -> None:
    """Search learning rate, epochs, batch size, LoRA r/alpha, warmup and replay with Optuna, guardrails on."""
    cfg = load_config_or_default(config)
    train_path = train_path or _default_split(cfg, "train")
    validation_path = validation_path or _default_split(cfg, "validation")
    if train_path is None or validation_path is None:
        raise TunerailError(
            Problem(
                "no training/validation split given",
                field="--train",
                fix="pass --train PATH --validation PATH (written by `tunerail split`), or run `tunerail run` first",
            )
        )
    if out is None:
        base = Path(cfg.source).parent if cfg.source else Path.cwd()
        out = base / "runs" / cfg.project.name / "sweep"
    from tunerail.sweep import StudyTarget, sweep

    def line(t: dict[str, Any]) -> None:
        value = "–" if t["value"] is None else f"{t['value']:.4f}"
        console.print(f"trial {t['number']}: {t['state']} {value} {escape(str(t['reason'] or ''))}", highlight=False)

    target = StudyTarget(trials=trials, storage=storage, name=study)
    result = sweep(cfg, train_data=train_path, validation_data=validation_path, out_dir=out, target=target, on_trial=line)
    c, s = result.counts, result.share
    console.print(
        f"[bold]study {escape(result.study)}[/] ({escape(result.storage)}): {c.get('COMPLETE', 0)} complete "
        f"({c.get('budget_cut', 0)} cut by the budget), {c.get('PRUNED', 0)} pruned, {c.get('FAIL', 0)} failed",
        highlight=False,
    )
    console.print(
        f"budget: {s['used_seconds']:.0f} s of {s['allowed_seconds']:.0f} s allowed "
        f"({100 * s['used_share']:.2f} % of budget.max_hours, share {100 * s['search_share']:.0f} %)",
        highlight=False,
    )
    if s["exceeded"]:
        console.print(
            "[yellow]warning:[/] the share was exceeded: a trial's setup (model load, tokenizing, first "
            "evaluation) cannot be cut; raise budget.max_hours or budget.search_share",
            highlight=False,
        )
    if result.best_params is not None:
        console.print(
            f"best {result.objective} {result.best_value:.4f} (trial {result.best_trial}): "
            + escape(", ".join(f"{k}={v}" for k, v in result.best_params.items())),
            highlight=False,
        )
    for key in ("best_yaml", "sweep_json", "report"):
        if key in result.paths:
            console.print(f"  {key}: {escape(result.paths[key])}", highlight=False)
