"""Candidate model folders for the select tests: the tiny random Llama under different model cards,
and a damaged copy (top blocks re-initialised with large weights)."""

from __future__ import annotations

import os
from pathlib import Path

from train_tiny import banking_rows, tiny_model_dir


def card_copy(folder: Path, licence_front_matter: str | None) -> Path:
    """The tiny model's files linked into ``folder`` with a README card (None: no README)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in tiny_model_dir().iterdir():
        if f.is_file() and f.name != "README.md" and not (folder / f.name).exists():
            os.symlink(f, folder / f.name)
    if licence_front_matter is not None:
        (folder / "README.md").write_text(f"---\n{licence_front_matter}\n---\n\nTest card.\n", encoding="utf-8")
    return folder


def damaged_copy(source: str | Path, folder: Path, top_blocks: int, std: float = 0.5, seed: int = 0, norm_scale: float = 1.0) -> Path:
    """Re-initialise the top ``top_blocks`` decoder blocks of ``source`` (normal(0, std) weights).

    ``norm_scale`` also multiplies the final norm's weight: a random tiny model predicts nearly
    uniformly whatever its blocks hold, so the tests sharpen its (random) predictions to damage it.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (folder / "config.json").exists():
        return folder
    model = AutoModelForCausalLM.from_pretrained(str(source))
    torch.manual_seed(seed)
    with torch.no_grad():
        for block in model.model.layers[-top_blocks:]:
            for _name, p in block.named_parameters():
                if p.dim() >= 2:
                    p.normal_(0.0, std)
        model.model.norm.weight.mul_(norm_scale)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(source)).save_pretrained(folder)
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n\nDamaged copy for tests.\n", encoding="utf-8")
    return folder


def banking_records(n: int = 120, labels: int = 4) -> list[dict[str, str]]:
    rows = banking_rows(4000)
    keep = sorted({r["category"] for r in rows})[:labels]
    return [{"text": r["text"], "label": r["category"]} for r in rows if r["category"] in keep][:n]


def select_config(tmp: Path, candidates: list[str], **select: object):
    from tunerail.config import TunerailConfig

    sel = {"sample_rows": 40, "few_shot": 2, "probe_steps": 1, "bootstrap": 200, "batch_size": 16}
    sel.update(select)
    return TunerailConfig.model_validate(
        {
            "task": "classification",
            "data": {"format": "text_label", "columns": {"text": "text", "label": "label"}},
            "model": {"base": candidates[0], "candidates": candidates, "max_seq_length": 64},
            "prompts": [{"system": "Classify the banking query.", "template": "{prompt}"}],
            "train": {"batch_size": 8, "epochs": 1, "bf16": False},
            "tracking": {"enabled": False},
            "select": sel,
            "store": {"path": str(tmp / "store")},
        }
    )
