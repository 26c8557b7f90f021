"""`tunerail eval`: criteria, baselines, forgetting, judge -> verdict and report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from tunerail.cli._common import (
    _print_verdict,
    _progress,
    app,
    console,
    guarded,
    load_config_or_default,
)
from tunerail.errors import TunerailError
from tunerail.config import field_help


# size: eval_cmd: one parameter per typer option of `tunerail eval` (typer reads the signature)
@app.command("eval")
@guarded
def eval_cmd(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (criteria, prompts, eval settings)."),
    test: Path = typer.Option(..., "--test", help="Frozen test file (test.jsonl from `tunerail split`)."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="LoRA adapter folder from `tunerail train`."),
    split_json: Optional[Path] = typer.Option(
        None,
        "--split-json",
        help="split.json (default: the one beside --test): checked against the store's split record; "
        "refuses a changed test set, flags edited criteria.",
    ),
    train_json: Optional[Path] = typer.Option(None, "--train-json", help="train.json: loss curves in the report."),
    out: Path = typer.Option(Path("eval-report"), "--out", help="Folder for report.html, report.json, review.csv."),
    prompts: bool = typer.Option(False, "--prompts", help="First compare the prompt variants on the validation set; use the best."),
    validation: Optional[Path] = typer.Option(
        None, "--validation", help="Validation file for --prompts (default: validation.jsonl beside --test)."
    ),
    base: Optional[str] = typer.Option(None, "--base", help=field_help("model.base")),
    allow_changed_adapter: bool = typer.Option(
        False,
        "--allow-changed-adapter",
        help="Evaluate an adapter whose files differ from the checkpoint its run stored (recorded in the report).",
    ),
    train: Optional[Path] = typer.Option(
        None,
        "--train",
        help=(
            "Training split: cheap baselines are fitted on it (+ validation) and k-shot examples drawn from it "
            "(default: train.jsonl beside --test when it exists)."
        ),
    ),
) -> None:
    """Evaluate base and fine-tuned model on the frozen test set; exit 1 on NOT READY."""
    from tunerail.eval import compare_prompts, evaluate

    cfg = load_config_or_default(config)
    with _progress() as progress:
        comparison = None
        if prompts:
            wanted = validation or test.parent / "validation.jsonl"
            if not wanted.exists():
                from tunerail.errors import Problem

                raise TunerailError(
                    Problem(
                        "validation file not found",
                        file=str(wanted),
                        fix="pass --validation PATH (prompt variants are compared on validation, never on test)",
                    )
                )
            comparison = compare_prompts(cfg, wanted, adapter_dir=adapter, base_model=base, progress=progress)
            cfg.eval.prompt_version = comparison["chosen"]
            for v in comparison["variants"]:
                console.print(f"prompt {escape(v['version'])}: {cfg.criteria.metric} {v['value']:.4f} [{v['low']:.3f}, {v['high']:.3f}]")
        train = train or _beside(test, "train.jsonl")
        val = validation or _beside(test, "validation.jsonl")
        result = evaluate(
            cfg,
            test_data=test,
            adapter_dir=adapter,
            base_model=base,
            out_dir=out,
            train_json=train_json,
            split_json=split_json,
            progress=progress,
            prompt_comparison=comparison,
            train_data=train,
            validation_data=val if train is not None else None,
            allow_changed_adapter=allow_changed_adapter,
        )
    _print_verdict(result)
    cache_note = result.lineage.get("eval_cache") or ""
    if cache_note and ("recomputed" in cache_note or not cache_note.startswith(("0 of", "not used"))):
        console.print(f"eval cache: {escape(cache_note)}", highlight=False, soft_wrap=True)  # the verdict says what it reused
    if not result.ready:
        raise typer.Exit(1)


def _beside(test: Path, name: str) -> Optional[Path]:
    """A split file written by `tunerail split` next to the test file, if there is one."""
    path = test.parent / name
    return path if path.exists() and path != test else None
