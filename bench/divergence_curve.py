"""Record a real noisy-but-healthy training loss curve for the divergence guard's tests (issue 25 §5).

    PYTHONPATH=. python bench/divergence_curve.py --steps 40 --out tests/data/noisy_loss_curve.json

LoRA on ``bundled:smollm2`` (SmolLM2-135M-Instruct), Banking77 rows of examples/banking77 with
30 % of them replaced by short foreign queries (tests/data/short_foreign_queries.tsv) under random
intents: the setting where the guard stopped a run at step 4 of 146. The divergence guard is off
while recording (the curve is what it would have judged); the step losses go to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _rows(n: int, share: float, seed: int) -> list[dict[str, str]]:
    with open(REPO / "examples" / "banking77" / "train.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rng = random.Random(seed)
    rows = rng.sample(rows, n)
    labels = sorted({r["category"] for r in rows})
    foreign = [
        line.split("\t", 1)[1].strip()
        for line in (REPO / "tests" / "data" / "short_foreign_queries.tsv").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    for i in rng.sample(range(n), int(share * n)):
        rows[i] = {"text": rng.choice(foreign), "category": rng.choice(labels)}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--share", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "noisy_loss_curve.json")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    import torch

    from tunerail.config import TunerailConfig
    from tunerail.train import train

    torch.set_num_threads(1)
    batch = 8
    losses: list[float] = []

    def progress(event: str, info: dict) -> None:
        if event == "step":
            losses.append(round(float(info["loss"]), 4))

    with tempfile.TemporaryDirectory() as tmp:
        train_path, val_path = Path(tmp) / "train.jsonl", Path(tmp) / "val.jsonl"
        rows = _rows(args.steps * batch + 32, args.share, args.seed)
        train_path.write_text("".join(json.dumps(r) + "\n" for r in rows[: args.steps * batch]), encoding="utf-8")
        val_path.write_text("".join(json.dumps(r) + "\n" for r in rows[args.steps * batch :]), encoding="utf-8")
        cfg = TunerailConfig.model_validate(
            {
                "task": "classification",
                "model": {"base": "bundled:smollm2", "max_seq_length": 128},
                "train": {
                    "batch_size": batch,
                    "epochs": 1,
                    "bf16": False,
                    "probe_steps": 0,
                    "eval_steps": 1000,
                    "guards": {"divergence": False},
                },
                "tracking": {"enabled": False},
                "store": {"path": str(Path(tmp) / "store")},
            }
        )
        train(cfg, train_data=train_path, validation_data=val_path, out_dir=Path(tmp) / "run", progress=progress)
    record = {
        "what": "per-step training loss, LoRA on bundled:smollm2, Banking77 with 30% foreign rows under random intents",
        "command": f"PYTHONPATH=. python bench/divergence_curve.py --steps {args.steps} --share {args.share} --seed {args.seed}",
        "batch_size": batch,
        "losses": losses,
    }
    args.out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
