"""Rich progress for `tunerail train`: a bar with loss, validation loss and ETA, then a summary."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

_COLOURS = {"error": "red", "warning": "yellow", "info": "cyan"}


class RichProgress:
    """A ``progress(event, info)`` callable for ``tunerail.train`` that draws on ``console``."""

    def __init__(self, console: Console):
        self.console = console
        self.bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  val {task.fields[val]}"),
            TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"),
            console=console,
            transient=False,
        )
        self.task: Any = None
        self.val = "-"

    def __enter__(self) -> "RichProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event in ("setup", "estimate", "lint", "guard") and "message" in info:
            finding = info.get("finding")
            colour = _COLOURS.get(finding.severity.value, "white") if finding is not None else "white"
            self.console.print(f"[{colour}]{escape(info['message'])}[/]", highlight=False)
        elif event == "step":
            if self.task is None:
                self.task = self.bar.add_task("train", total=info["total"], loss="-", val=self.val, eta="-")
            # The recipe's ETA follows the measured running rate, evaluations and checkpoints included.
            eta = info.get("eta")
            self.bar.update(self.task, completed=info["step"], loss=f"{info['loss']:.4f}", eta="-" if eta is None else _clock(eta))
        elif event == "eval" and info.get("val_loss") is not None:
            metric = f" / {info['val_metric']:.4f}" if info.get("val_metric") is not None else ""
            self.val = f"{info['val_loss']:.4f}{metric}" + (" *" if info.get("best_step") == info["step"] else "")
            if self.task is not None:
                self.bar.update(self.task, val=self.val)

    def summary(self, result: Any) -> None:
        selection = result.selection or {}
        metric = selection.get("metric") if any(h.get("val_metric") is not None for h in result.history) else None
        table = Table(title=f"training history ({result.stopped_reason}, best step {result.best_step})")
        for col in ("step", "epoch", "train loss", "val loss", *([f"val {metric}"] if metric else []), "lr", "tokens", "seconds"):
            table.add_column(col, justify="right")
        for h in result.history:
            mark = " *" if h["step"] == result.best_step else ""
            table.add_row(
                str(h["step"]),
                f"{h['epoch']:.2f}",
                _num(h["train_loss"]),
                _num(h["val_loss"]) + mark,
                *([_num(h.get("val_metric"))] if metric else []),
                f"{h['lr']:.2e}",
                f"{h['tokens']:,}",
                f"{h['seconds']:.1f}",
            )
        self.console.print(table)
        chosen = selection.get("chosen_by") or {}
        if metric and chosen:
            self.console.print(
                f"checkpoint chosen by {selection['select_by']}: lowest val loss at step {chosen.get('loss')}, highest val {metric} "
                f"at step {chosen.get('metric')} ({len(selection.get('rows') or [])} rows, {selection.get('seconds_per_eval')} s per evaluation)"
            )
        est, act = result.estimate, result.actual
        if est:
            basis = f" ({act['estimate_basis']})" if act.get("estimate_basis") else ""
            self.console.print(
                f"estimate{basis} vs actual: {est['seconds'] / 60:.1f} vs {act['seconds'] / 60:.1f} min, "
                f"{est['tokens']:,} vs {act['tokens']:,} tokens, cost {est['cost']:.2f} vs {act['cost']:.2f}"
            )
        if result.guards_disabled:
            self.console.print(f"[yellow]guardrails switched off: {', '.join(result.guards_disabled)}[/]")
        self.console.print(
            f"best adapter: [bold]{result.adapter_dir}[/] (store {str(result.checkpoint_id)[:12]}, "
            f"MLflow run {result.run_id or '-'}); padding waste {100 * result.padding_waste:.1f} %"
        )


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"
