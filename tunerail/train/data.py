"""Records -> token ids with the spans the loss covers -> length-grouped, padded batches.

Why this shape: the loss covers the assistant's turns only (the prompt is given, not learned), and
each batch is padded to its own longest row; grouping rows of similar length keeps the padding
waste (padded tokens / all tokens processed) low without packing, which would let rows attend
to each other.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from tunerail.data.records import Record, Rejection
from tunerail.errors import DataError, Problem
from tunerail.data.records import RowRef
from tunerail.prompting import LOSS_KINDS, encode_parts, fit_parts

IGNORE_INDEX = -100


@dataclass
class Example:
    """One tokenised row: the loss covers ``input_ids[start:end]`` for each ``(start, end)`` of ``spans``."""

    input_ids: list[int]
    spans: list[tuple[int, int]]
    full_length: int  # before truncation, to count truncated rows
    ref: RowRef | None = None

    @property
    def length(self) -> int:
        return len(self.input_ids)

    @property
    def truncated(self) -> bool:
        return self.full_length > len(self.input_ids)

    @property
    def answer_start(self) -> int:
        """First position the loss covers."""
        return self.spans[0][0]

    @property
    def labels(self) -> list[int]:
        """``input_ids`` with every position outside the spans set to ``IGNORE_INDEX``."""
        out = [IGNORE_INDEX] * len(self.input_ids)
        for start, end in self.spans:
            out[start:end] = self.input_ids[start:end]
        return out


def tokenize_records(
    records: Sequence[Record], tokenizer: Any, prompt_template: Any, *, max_length: int, loss_on: str = "all"
) -> list[Example]:
    """Render each record with the shared prompt helpers, cut it at its assistant turns and tokenise.

    ``loss_on`` picks the spans the loss covers (``tunerail.prompting.LOSS_KINDS``): every
    assistant turn (``all``), the final one (``last``) or every token (``sequence``). Rows longer
    than ``max_length`` are cut by :func:`tunerail.prompting.fit_parts` (the final answer keeps up
    to half the budget, the conversation before it is cut from the left), the cut the doctor reports.

    Raises ``DataError`` naming the row when a row has no token to learn from (an empty answer
    with a tokenizer that has neither a chat template nor an end-of-sequence token).
    """
    kinds = LOSS_KINDS[loss_on]
    examples: list[Example] = []
    for record in records:
        parts = encode_parts(tokenizer, record, prompt_template)
        ids: list[int] = []
        spans: list[tuple[int, int]] = []
        for part, kind in fit_parts(parts, max_length):
            if kind in kinds and part:
                if spans and spans[-1][1] == len(ids):
                    spans[-1] = (spans[-1][0], len(ids) + len(part))
                else:
                    spans.append((len(ids), len(ids) + len(part)))
            ids += part
        if not spans:
            raise DataError(
                Problem(
                    "the row has no token to train on (its answer renders to no token)",
                    file=record.ref.file,
                    line=record.ref.line,
                    fix="write the answer or drop the row (`tunerail doctor --fix` drops empty answers)",
                )
            )
        examples.append(Example(ids, spans, sum(len(p) for p, _ in parts), record.ref))
    return examples


def length_grouped_batches(lengths: Sequence[int], batch_size: int, *, seed: int, epoch: int) -> list[list[int]]:
    """Batches of row indices for one epoch: shuffled, then grouped by length within mega-batches.

    Uses transformers' ``get_length_grouped_indices`` (the ``group_by_length`` sampler of
    ``Trainer``); seeded by ``seed`` and ``epoch`` so a resumed run replays the same order.
    """
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = get_length_grouped_indices(list(lengths), batch_size, generator=generator)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, Any]:
    """Right-pad to the longest row; labels are the example's spans, everything else ignored.

    The mask comes from the span, never from ``pad_id`` (pad = eos for many chat models).
    """
    import torch

    width = max(e.length for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for i, e in enumerate(examples):
        row = torch.tensor(e.input_ids, dtype=torch.long)
        ids[i, : e.length] = row
        attention[i, : e.length] = 1
        for start, end in e.spans:
            labels[i, start:end] = row[start:end]
    return {"input_ids": ids, "attention_mask": attention, "labels": labels}


def padding_waste(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Padded tokens / all tokens processed, for a list of batches."""
    real = padded = 0
    for batch in batches:
        width = max(lengths[i] for i in batch)
        real += sum(lengths[i] for i in batch)
        padded += width * len(batch)
    return 0.0 if padded == 0 else 1.0 - real / padded


# -- replay (forgetting mitigation) ----------------------------------------------------------

REPLAY_RESOURCE = "replay_seed_tasks.jsonl"
RESOURCES = Path(__file__).resolve().parent.parent / "resources"


def load_replay_records() -> list[Record]:
    """The bundled general instruction set (Self-Instruct seed tasks, Apache-2.0) as records."""
    text = (RESOURCES / REPLAY_RESOURCE).read_text(encoding="utf-8")
    records = []
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        row = json.loads(line)
        prompt = row["instruction"] if not row.get("input") else f"{row['instruction']}\n\n{row['input']}"
        records.append(
            Record(
                RowRef(i, i + 1, REPLAY_RESOURCE),
                "instruction",
                [{"role": "user", "content": prompt}, {"role": "assistant", "content": row["output"]}],
                prompt,
                row["output"],
                fields=row,
            )
        )
    return records


def replay_sample(n_train: int, ratio: float, seed: int, pool: Sequence[Record] | None = None) -> list[Record]:
    """``ratio`` of the mixed training set drawn from the replay set (cycled when it runs out).

    ``pool`` narrows the bundled set (the recipe passes the rows that fit ``max_seq_length``).
    """
    if ratio <= 0:
        return []
    pool = list(pool) if pool else load_replay_records()
    want = round(n_train * ratio / (1 - ratio))
    rng = random.Random(seed)
    out: list[Record] = []
    while len(out) < want:
        batch = pool[:]
        rng.shuffle(batch)
        out.extend(batch[: want - len(out)])
    return out


def replay_pool(tokenizer: Any, max_length: int) -> list[Record]:
    """The bundled replay rows that fit ``max_length`` whole, or all of them when none fits.

    Replay rows are tunerail's, not the user's: cutting them would teach truncated answers and
    blame the user's data in the truncation warning, so only rows that fit are sampled.
    """
    from tunerail.config import PromptTemplate
    from tunerail.prompting import training_lengths

    pool = load_replay_records()
    lengths = training_lengths(tokenizer, pool, PromptTemplate())
    fitting = [r for r, n in zip(pool, lengths) if n <= max_length]
    return fitting or pool


def load_split(source: str | Path | Sequence[Any], config: Any, role: str) -> list[Record]:
    """Records of a split given as a file (written by the split step) or a list of records/dicts."""
    from tunerail.data.loaders import load_records, to_record, detect_format
    from tunerail.data.records import RawRow

    records: list[Record] = []
    rejections: list[Rejection] = []
    if isinstance(source, (str, Path)):
        from tunerail.data.loaders import iter_raw_rows

        name = str(source)
        if next(iter(iter_raw_rows(source)), None) is not None:
            records, rejections, _ = load_records(source, config.data.format, config.data.columns)
    else:
        items = list(source)
        records = [r for r in items if isinstance(r, Record)]
        dicts = [r for r in items if not isinstance(r, Record)]
        name = f"<{role} records>"
        if dicts:
            fmt = config.data.format if config.data.format != "auto" else detect_format(dicts, config.data.columns)
            for i, row in enumerate(dicts):
                item = to_record(RawRow(RowRef(i, i + 1, None), dict(row)), fmt, config.data.columns)
                if isinstance(item, Record):
                    records.append(item)
                else:
                    rejections.append(item)
    if rejections:
        first = rejections[0]
        raise DataError(
            Problem(
                f"{len(rejections)} {role} row(s) cannot be read: {first.reason}",
                file=first.ref.file or name,
                line=first.ref.line,
                field=first.field,
                fix="run `tunerail doctor --fix` and `tunerail split` to write clean splits",
            )
        )
    if not records:
        raise DataError(
            Problem(
                f"the {role} split is empty",
                file=name,
                fix=(
                    "a validation split is required (early stopping, best checkpoint); "
                    "run `tunerail split`, or set train.guards.validation: false to train without one"
                )
                if role == "validation"
                else "point --train to a split with rows (`tunerail split` writes it)",
            )
        )
    return records
