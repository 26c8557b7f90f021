"""The padded batch both Trainer baselines (bench/train.py, bench/gpu.py) feed transformers' Trainer.

Lives once so the two measurements compare tunerail's loop against the same plain-Trainer collation.
"""

from __future__ import annotations

from typing import Any


def recording_collator(pad_id: int, ignore_index: int, seen: list[list[int]]) -> Any:
    """A Trainer ``data_collator`` that right-pads rows of input_ids/labels and records each batch's lengths."""
    import torch

    def collate(rows: list[dict]) -> dict:
        width = max(len(r["input_ids"]) for r in rows)
        seen.append([len(r["input_ids"]) for r in rows])
        ids = torch.full((len(rows), width), pad_id)
        labels = torch.full((len(rows), width), ignore_index)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(r["input_ids"]), torch.tensor(r["labels"]), 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return collate
