"""What every check receives: the records, the config, and lazily computed shared inputs.

Expensive inputs (embeddings, token counts, MinHash clusters) are computed once on first use
and shared by all checks that need them, so adding a check never repeats that work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from tunerail.config import TunerailConfig
from tunerail.data.records import Record, Rejection


@dataclass
class CheckContext:
    records: list[Record]
    rejections: list[Rejection] = field(default_factory=list)
    config: TunerailConfig = field(default_factory=TunerailConfig)
    format: str = "auto"
    cache_dir: Path | None = None  # embedding cache; default under the tunerail cache root

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def is_classification(self) -> bool:
        return any(r.label is not None for r in self.records[:1]) or self.config.task == "classification"

    @cached_property
    def texts(self) -> list[str]:
        """Prompt + completion of every record: what duplicate checks compare."""
        return [r.text for r in self.records]

    @cached_property
    def prompts(self) -> list[str]:
        return [r.prompt for r in self.records]

    @cached_property
    def prompt_embeddings(self) -> Any:
        """L2-normalised MiniLM embeddings of the prompts (rows aligned with ``records``)."""
        from tunerail.data.embeddings import embed_texts

        return embed_texts(self.prompts, model=self.config.model.embedding_model, cache_dir=self.cache_dir)

    @cached_property
    def near_duplicate_clusters(self) -> list[list[int]]:
        """Clusters (record positions) of near-duplicate texts by MinHash LSH."""
        from tunerail.doctor.near_duplicates import near_duplicate_clusters

        return near_duplicate_clusters(self.texts, threshold=self.config.doctor.near_duplicate_threshold)

    @cached_property
    def similar_prompt_pairs(self) -> list[tuple[int, int, float]]:
        """Prompt pairs (i < j, cosine) with MiniLM cosine >= ``doctor.semantic_duplicate_threshold``."""
        from tunerail.doctor.semantic import similar_pairs

        return similar_pairs(self.prompt_embeddings, self.config.doctor.semantic_duplicate_threshold)

    @cached_property
    def tokenizer(self) -> Any:
        """The target model's tokenizer (raises ``TunerailError`` when it cannot be loaded)."""
        from tunerail.models import load_tokenizer

        return load_tokenizer(self.config.model.base)

    @cached_property
    def token_lengths(self) -> list[int]:
        """Tokens per record after the chat template, exactly as training will format it."""
        from tunerail.prompting import pick_template, training_lengths

        # 64 characters per token is far above any real token, so a capped row still counts as too long
        return training_lengths(self.tokenizer, self.records, pick_template(self.config), max_chars=64 * self.config.model.max_seq_length)
