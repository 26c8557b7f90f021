"""Shared helpers for the train tests: a tiny random Llama with the SmolLM2 tokenizer, small splits.

The model (hidden 64, 2 layers) trains a step in milliseconds, so guardrail tests exercise the
real recipe end to end without the cost of a pretrained model.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BANKING = REPO / "examples" / "banking77" / "train.csv"


def tiny_model_dir() -> Path:
    """Build once per machine (cached under the tunerail cache), then reuse."""
    from eval_fixtures import build_tiny_model

    from tunerail.models import cache_root

    target = cache_root() / "test-models" / "tiny-llama-h64-l2-v2"
    if (target / "config.json").exists():
        return target
    tmp = build_tiny_model(target.with_name(target.name + f".tmp{os.getpid()}"), hidden_size=64)
    try:
        os.replace(tmp, target)
    except OSError:  # another worker won the race
        pass
    return target


def banking_rows(n: int, offset: int = 0) -> list[dict[str, str]]:
    with open(BANKING, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return rows[offset : offset + n]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def tiny_config(tmp: Path, **train: object):
    """A config for the tiny model: fp32, no tracking unless asked, store under ``tmp``."""
    from tunerail.config import TunerailConfig

    base = {"batch_size": 8, "epochs": 1, "bf16": False, "probe_steps": 0}
    base.update(train)
    return TunerailConfig.model_validate(
        {
            "task": "classification",
            "model": {"base": str(tiny_model_dir()), "max_seq_length": 128},
            "prompts": [{"system": "Classify the banking query.", "template": "{prompt}"}],
            "train": base,
            "tracking": {"enabled": False},
            "store": {"path": str(tmp / "store")},
        }
    )


def run_main(argv: list[str]) -> None:
    """``python tests/train_tiny.py OUT TRAIN VAL [--resume]``: a deterministic tiny run (subprocess tests).

    One thread, fp32, dropout 0: bitwise reproducible on CPU. Under ``torchrun`` every rank
    writes ``rank<N>.json`` with a hash of its trainable weights, so the test can compare ranks.
    """
    import hashlib

    import torch

    torch.set_num_threads(1)
    out, train_path, val_path = Path(argv[0]), Path(argv[1]), Path(argv[2])
    from tunerail.train import train

    cfg = tiny_config(out.parent, learning_rate=1e-3, epochs=5 / 3, eval_steps=5, patience=10)  # 20 steps (10 on 2 ranks)
    result = train(cfg, train_data=train_path, validation_data=val_path, out_dir=out, resume="--resume" in argv)

    rank = int(os.environ.get("RANK", "0"))
    from safetensors.torch import load_file

    weights = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    digest = hashlib.sha256(b"".join(weights[k].numpy().tobytes() for k in sorted(weights))).hexdigest()
    # "sha": this rank's own in-memory weights; "adapter_sha": the file rank 0 wrote (the same for every rank).
    (out / f"rank{rank}.json").write_text(
        json.dumps({"sha": result.weights_sha256, "adapter_sha": digest, "history": result.history, "best_step": result.best_step})
    )


if __name__ == "__main__":
    import sys

    run_main(sys.argv[1:])
