"""Preference tuning (train.method: dpo) on the bundled SmolLM2-135M-Instruct with a planted preference.

    python bench/dpo.py                 # ~15 CPU-minutes (135M model, 96 pairs, 8 steps); about a minute on one GPU

Pairs: Banking77 queries (examples/banking77/train.csv); both answers name the query's intent, the
chosen one closes politely, the rejected one curtly (closers drawn from four of each, seeded), as
annotators who always prefer the polite answer would vote. Whole prompts are held out
(``train.preference.validation_share``); on them the untuned and the tuned adapter are compared:
share of pairs where the model gives the chosen answer the higher log-likelihood (Wilson 95 % CI),
and the mean log-likelihood margin. Results: ``bench/results/dpo.json`` and ``dpo.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "examples" / "banking77" / "train.csv"
POLITE = ["Glad to help!", "Happy to assist.", "Thanks for asking!", "Have a great day!"]
CURT = ["Figure it out.", "Not my problem.", "Ask someone else.", "Whatever works."]


def planted(n: int, seed: int = 0) -> list:
    from tunerail.data.preference import PreferencePair

    rng = random.Random(seed)
    with open(DATA, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rng.shuffle(rows)
    out = []
    for r in rows[:n]:
        label = r["category"].replace("_", " ")
        out.append(PreferencePair(r["text"], f"{label}. {rng.choice(POLITE)}", f"{label}. {rng.choice(CURT)}"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=96)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--eval-steps", type=int, default=None)
    args = parser.parse_args()
    from tunerail.config import TunerailConfig
    from tunerail.data.preference import PairSet
    from tunerail.train.preference import train_preference

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TunerailConfig.model_validate(
            {
                "task": "classification",
                "model": {"base": "bundled:smollm2", "max_seq_length": 128},
                "prompts": [{"system": "Answer the banking customer.", "template": "{prompt}"}],
                "train": {
                    "method": "dpo",
                    "learning_rate": args.lr,
                    "epochs": args.epochs,
                    "batch_size": 8,
                    "probe_steps": 0,
                    "eval_steps": args.eval_steps,
                },
                "tracking": {"enabled": False},
                "store": {"path": str(Path(tmp) / "store")},
            }
        )
        cfg.train.preference.validation_share = 1 / 3
        start = time.perf_counter()
        result = train_preference(cfg, pairs=PairSet(planted(args.pairs), "bench/dpo.py planted"), out_dir=Path(tmp) / "dpo")
        seconds = time.perf_counter() - start
    out = {
        "model": "bundled:smollm2",
        "pairs": args.pairs,
        "learning_rate": args.lr,
        "epochs": args.epochs,
        "data": result.data,
        "before": result.before,
        "after": result.after,
        "steps": result.actual["steps"],
        "best_step": result.best_step,
        "stopped_reason": result.stopped_reason,
        "seconds": round(seconds, 1),
        "load_average": os.getloadavg(),
    }
    results = REPO / "bench" / "results"
    (results / "dpo.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    b, a = result.before, result.after
    md = (
        "# DPO on a planted preference (bench/dpo.py)\n\n"
        f"SmolLM2-135M-Instruct, fresh LoRA, {result.data['train_pairs']} train / {result.data['validation_pairs']} held-out pairs, "
        f"lr {args.lr:g}, {args.epochs:g} epoch(s), {result.actual['steps']} steps, {seconds:.0f} s (load average {os.getloadavg()[0]:.1f}).\n\n"
        "| adapter | held-out preference accuracy (95 % CI) | mean log-likelihood margin |\n|---|---|---|\n"
        f"| before | {b['accuracy']:.3f} ({b['accuracy_low']:.3f}-{b['accuracy_high']:.3f}) | {b['margin']:.3f} |\n"
        f"| after | {a['accuracy']:.3f} ({a['accuracy_low']:.3f}-{a['accuracy_high']:.3f}) | {a['margin']:.3f} |\n"
    )
    (results / "dpo.md").write_text(md, encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
