"""What every check receives: the records, the config, and lazily computed shared inputs.

Expensive inputs (embeddings, token counts, MinHash clusters) are computed once on first use
and shared by all checks that need them, so adding a check never repeats that work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, overload

from tunerail.config import TunerailConfig
from tunerail.data.record_prompts import are_records
from tunerail.data.records import Record, Rejection


@dataclass
class CheckContext:
    records: list[Record]
    rejections: list[Rejection] = field(default_factory=list)
    config: TunerailConfig = field(default_factory=TunerailConfig)
    format: str = "auto"
    cache_dir: Path | None = None  # embedding cache; default under the tunerail cache root
    # Per-row inputs a check computes on first use and shares with the other checks (and the
    # report): declared here so nobody reads them back from ``__dict__`` by string key. The
    # computing code lives beside its checks (it needs check modules this one must not import).
    languages: Sequence[tuple[str, float] | None] | None = field(default=None, repr=False)  # checks.language.row_languages
    pii_matches: list[list[tuple[str, Any]]] | None = field(default=None, repr=False)  # (field, match) per row; checks.pii
    near_prompt_edges: list[tuple[int, int]] | None = field(default=None, repr=False)  # checks.similarity
    test_prompts: Sequence[str] | None = field(default=None, repr=False)  # frozen test prompts (doctor --test); checks.preference

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def is_classification(self) -> bool:
        return any(r.label is not None for r in self.records[:1]) or self.config.task == "classification"

    @cached_property
    def texts(self) -> Sequence[str]:
        """Prompt + completion of every record: what duplicate checks compare.

        A view built row by row on access, not a list: a second copy of every text would cost
        ~100 bytes a row (100 MB at 1M rows) for checks that read each text once or twice.
        """
        return _RecordView(self.records, lambda r: r.text)

    @cached_property
    def prompts(self) -> Sequence[str]:
        return _RecordView(self.records, lambda r: r.prompt)

    @cached_property
    def prompts_are_records(self) -> bool:
        """Record-to-text data: most prompts are records of fields (``tunerail.data.record_prompts``), not one tweet with a colon."""
        return not self.is_classification and are_records(self.prompts)

    @cached_property
    def prompt_embeddings(self) -> Any:
        """L2-normalised MiniLM embeddings of the prompts (rows aligned with ``records``)."""
        from tunerail.data.embeddings import embed_texts

        return embed_texts(list(self.prompts), model=self.config.model.embedding_model, cache_dir=self.cache_dir)

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

    @property
    def token_lengths_if_computed(self) -> list[int] | None:
        """``token_lengths`` when a check already needed them, else None (the report never loads a tokenizer)."""
        return self.__dict__.get("token_lengths")  # where functools.cached_property keeps its value

    @cached_property
    def token_lengths(self) -> list[int]:
        """Tokens per record after the chat template, exactly as training will format it."""
        from tunerail.prompting import pick_template, training_lengths

        # 64 characters per token is far above any real token, so a capped row still counts as too long
        return training_lengths(self.tokenizer, self.records, pick_template(self.config), max_chars=64 * self.config.model.max_seq_length)


class _RecordView(Sequence[str]):
    """One text field of every record, read on access (no copy of the texts)."""

    def __init__(self, records: list[Record], get: Callable[[Record], str]):
        self.records, self.get = records, get

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[str]:
        return map(self.get, self.records)

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self.get(r) for r in self.records[i]]
        return self.get(self.records[i])
