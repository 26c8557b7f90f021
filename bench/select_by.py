"""Which checkpoint do validation loss and the task metric pick? (``train.select_by``, issue 21 §2)

    python bench/select_by.py --train-rows 400 --eval-steps 10     # ~10-20 min on a shared 2-core CPU

One training run of the WNUT-17 demo's recipe (its tunerail.yaml and its split from
``/work/demo/wnut17/runs/wnut17-demo/split``) with ``train.select_by: metric`` over every
validation row and early stopping off, so both curves are complete. From the one history: the
step lowest validation loss picks, the step highest field F1 picks, and each step's field F1 on the
validation rows. Also the cost: seconds per evaluation of the loss pass and of the generation.
``--train-rows`` trains on the first N training rows (a shorter run than the demo's; say so).
Results: ``bench/results/select_by.json`` and ``select_by.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = Path("/work/demo/wnut17")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=str(DEMO / "runs" / "wnut17-demo"))
    ap.add_argument("--config", default=str(DEMO / "tunerail.yaml"))
    ap.add_argument("--train-rows", type=int, default=0, help="first N training rows (0: all)")
    ap.add_argument("--eval-steps", type=int, default=0, help="0: the demo's")
    ap.add_argument("--metric-rows", type=int, default=1000)
    args = ap.parse_args()

    from tunerail.config import load_config
    from tunerail.train import train

    cfg = load_config(args.config)
    cfg.train.select_by = "metric"
    cfg.train.metric_rows = args.metric_rows
    cfg.train.early_stopping = False  # the whole curve; the choice is read from it
    if args.eval_steps:
        cfg.train.eval_steps = args.eval_steps
    cfg.tracking.enabled = False
    split = Path(args.run) / "split"
    train_rows = [json.loads(line) for line in (split / "train.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.train_rows:
        train_rows = train_rows[: args.train_rows]
    with tempfile.TemporaryDirectory() as tmp:
        cfg.store.path = str(Path(tmp) / "store")
        train_path = Path(tmp) / "train.jsonl"
        train_path.write_text("".join(json.dumps(r) + "\n" for r in train_rows), encoding="utf-8")
        t0 = time.perf_counter()
        result = train(cfg, train_data=train_path, validation_data=split / "validation.jsonl", out_dir=Path(tmp) / "run")
        wall = time.perf_counter() - t0
    sel = result.selection
    out = {
        "command": "python bench/select_by.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "train_rows": len(train_rows),
        "validation_rows": result.data["validation_rows"],
        "metric": sel["metric"],
        "metric_rows": len(sel["rows"]),
        "steps": result.actual["steps"],
        "eval_steps": cfg.train.eval_steps,
        "history": [{k: h[k] for k in ("step", "train_loss", "val_loss", "val_metric")} for h in result.history],
        "chosen_by": sel["chosen_by"],
        "val_metric_at": sel["val_metric_at"],
        "val_loss_at": sel["val_loss_at"],
        "generation_seconds_per_eval": sel["seconds_per_eval"],
        "train_seconds": result.actual["seconds"],
        "wall_seconds": round(wall, 1),
        "load_average": os.getloadavg(),
        "threads": os.environ.get("OMP_NUM_THREADS"),
    }
    results = ROOT / "bench" / "results"
    (results / "select_by.json").write_text(json.dumps(out, indent=2), encoding="utf-8")
    (results / "select_by.md").write_text(markdown(out), encoding="utf-8")
    print(markdown(out))


def markdown(out: dict) -> str:
    lines = [
        "# Checkpoint choice: validation loss vs the task metric (WNUT-17 demo recipe)",
        "",
        f"`{out['command']}`: {out['train_rows']} training rows, {out['steps']} steps, evaluation every "
        f"{out['eval_steps']} steps; {out['metric']} on {out['metric_rows']} of {out['validation_rows']} validation rows.",
        "",
        "| step | train loss | val loss | val " + out["metric"] + " |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for h in out["history"]:
        tl = "" if h["train_loss"] is None else f"{h['train_loss']:.4f}"
        lines.append(f"| {h['step']} | {tl} | {h['val_loss']:.4f} | {h['val_metric']:.4f} |")
    c, m = out["chosen_by"], out["val_metric_at"]
    lines += [
        "",
        f"- lowest validation loss: step {c['loss']} ({out['metric']} {m.get('loss', float('nan')):.4f})",
        f"- highest {out['metric']}: step {c['metric']} ({out['metric']} {m.get('metric', float('nan')):.4f})",
        f"- generation per evaluation: {out['generation_seconds_per_eval']} s; training {out['train_seconds']} s "
        f"(wall {out['wall_seconds']} s, load average {', '.join(f'{x:.2f}' for x in out['load_average'])}, "
        f"OMP_NUM_THREADS={out['threads']})",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
