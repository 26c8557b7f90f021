"""How likely a language model finds it that each answer ends where it does: the meaning signal for cut answers.

A cut at a word boundary can leave a complete-looking line ("William" of "William Shakespeare",
"1. Apple" of a three-item list); only the meaning shows it. A chat model trained to stop puts
its end-of-turn token right after a finished answer and seldom after a cut one. So each row is
rendered as training renders it (:func:`tunerail.prompting.render_example`, the same chat
template) and scored once. The check reads ``finish``, the odds of the answer ending now or after
a closing stop: end-of-turn alone (``full``) also marks finished sentences that only lack their
stop (on E2E's crowd-written descriptions it flagged 11 % of clean rows at a threshold where
``finish`` flags 1.3 %, both real cuts), and a stop alone (``closing``) cannot tell a worked math
answer cut between two steps (GSM8K: 12 % of such cuts found, ``finish`` 70 %). The same pass
also gives end-of-turn before the last word (``before_last``). Idea as in LiveKit's and
Speechmatics' turn detectors (SmolLM-size chat models, the end-of-turn probability after the
user's words); here on the answer, given the prompt.

Cost: one forward pass of the scoring model over at most ``max_prompt_tokens + max_answer_tokens``
tokens a row (the end of the prompt, the end of the answer: where the answer's end is decided),
rows batched by length. Torch and transformers are imported only here, only when the check runs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from tunerail.data.records import Record
from tunerail.prompting import build_messages, render_example

_LAST_WORD = re.compile(r"\S+\s*$")


@dataclass(frozen=True)
class EndScore:
    """Log-probabilities of the end-of-turn token after the answer (``full``) and before its last word (``before_last``),
    of the answer closing next (``closing``: end-of-turn or a closing stop, ``CLOSING_MARKS``), and of the
    answer finishing (``finish``: end-of-turn now, or a closing stop and then end-of-turn).

    ``before_last`` is None for a one-word answer, or when the last word's start lies outside the tokens scored.
    ``closing`` tells a finished sentence that only lacks its stop ("... for less than 20 euros") from a cut one;
    ``finish`` also tells the last sentence from one that more sentences should follow (a worked answer cut
    between two steps): p(end) + p(stop) x p(end | answer + "."), one extra token in the same pass.
    """

    full: float
    before_last: float | None
    closing: float
    finish: float


CLOSING_MARKS = (".", "!", "?", "…", "。")


@dataclass
class _Row:
    ids: list[int]  # end of the prompt + end of the answer + a full stop (for ``finish``)
    end_id: int  # the template's first token after an answer (``<|im_end|>`` for SmolLM2)
    closing_ids: tuple[int, ...]  # end_id and the single-token CLOSING_MARKS
    back: int  # tokens of the last word: position ``-2 - back`` predicts the token after the answer without it; 0: none

    def key(self, model: str) -> bytes:
        """Cache key: everything the score depends on (the model, the tokens read, which token and positions)."""
        return hashlib.sha256(f"{model}\0{self.ids}\0{self.closing_ids}\0{self.back}".encode()).digest()[:16]


def _encode_all(tokenizer: Any, records: Sequence[Record], template: Any, max_prompt: int, max_answer: int) -> list[_Row]:
    """Every row's tokens; the closing marks' token ids are the tokenizer's, so they are read once, not per row."""
    marks = [ids[0] for ids in tokenizer(list(CLOSING_MARKS), add_special_tokens=False)["input_ids"] if len(ids) == 1]
    return [_encode(tokenizer, r, template, max_prompt, max_answer, marks) for r in records]


def _encode(tokenizer: Any, record: Record, template: Any, max_prompt: int, max_answer: int, marks: list[int]) -> _Row:
    """The tokens a row is scored on: the last ``max_prompt`` of the rendered prompt, the last ``max_answer`` of the answer."""
    answer = record.completion.rstrip()
    prompt, rendered = render_example(tokenizer, build_messages(record, template), answer)
    suffix = rendered[len(answer) :] if rendered.startswith(answer) else (tokenizer.eos_token or "\n")
    end_ids = tokenizer(suffix, add_special_tokens=False)["input_ids"] or [tokenizer.eos_token_id]
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"][-max_prompt:]
    enc = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)
    a_ids, offsets = enc["input_ids"][-max_answer:], enc["offset_mapping"][-max_answer:]
    last = _LAST_WORD.search(answer)
    start = last.start() if last and last.start() > 0 else None
    back = sum(1 for _, end in offsets if start is not None and end > start)
    return _Row(
        p_ids + a_ids + (marks[:1] or end_ids[:1]), end_ids[0], tuple(dict.fromkeys([end_ids[0], *marks])), back if back < len(a_ids) else 0
    )


MAX_PROMPT_TOKENS, MAX_ANSWER_TOKENS = 48, 64  # the end of each side a row is scored on (the cost per row)


def end_scores(
    model: Any,
    tokenizer: Any,
    records: Sequence[Record],
    template: Any = None,
    *,
    max_prompt_tokens: int = MAX_PROMPT_TOKENS,
    max_answer_tokens: int = MAX_ANSWER_TOKENS,
    batch_size: int = 32,
) -> list[EndScore]:
    """:class:`EndScore` of every record, in order (batched by length, left-padded, the LM head applied only where read).

    Parameters
    ----------
    model, tokenizer : a causal LM and its tokenizer (``tunerail.models.load_causal_lm`` / ``load_tokenizer``).
    records : the rows; their prompts are rendered with ``template`` exactly as training renders them.
    max_prompt_tokens, max_answer_tokens : how much of each side's end is read (the cost per row).
    batch_size : rows per forward pass.
    """
    rows = _encode_all(tokenizer, records, template, max_prompt_tokens, max_answer_tokens)
    return _score_rows(model, tokenizer, rows, batch_size)


def _score_rows(model: Any, tokenizer: Any, rows: Sequence[_Row], batch_size: int = 32) -> list[EndScore]:
    import torch

    out: list[EndScore | None] = [None] * len(rows)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].ids))
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = [rows[i] for i in order[start : start + batch_size]]
            width = max(len(r.ids) for r in batch)
            ids = torch.tensor([[pad] * (width - len(r.ids)) + r.ids for r in batch], device=device)
            mask = torch.tensor([[0] * (width - len(r.ids)) + [1] * len(r.ids) for r in batch], device=device)
            positions = (mask.cumsum(1) - 1).clamp(min=0)
            keep = 2 + max(r.back for r in batch)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep).logits.float()
            logp = torch.log_softmax(logits, dim=-1)
            for j, (i, r) in enumerate(zip(order[start : start + batch_size], batch)):
                before = float(logp[j, -2 - r.back, r.end_id]) if r.back else None
                end, marks = logp[j, -2, r.end_id], logp[j, -2, list(r.closing_ids[1:])]
                closing = torch.logsumexp(torch.cat([end[None], marks]), dim=0)
                finish = torch.logaddexp(end, torch.logsumexp(marks, dim=0) + logp[j, -1, r.end_id])
                out[i] = EndScore(float(end), before, float(closing), float(finish))
    return [s for s in out if s is not None]


# Rows served from the on-disk cache vs rows actually scored, since import: a test (or the benchmark)
# can prove that a second pass scored nothing, which wall time cannot.
CACHE_STATS: dict[str, int] = {"hits": 0, "scored": 0}


def cached_end_scores(model_name: str, records: Sequence[Record], template: Any = None, cache_dir: Path | None = None) -> list[EndScore]:
    """:func:`end_scores` with ``model_name`` loaded on first need and each distinct row scored once, cached on disk.

    The cache (``<cache root>/end_scores``, one file per model) is keyed by the tokens read, so a
    re-run of the doctor after fixing some rows scores only those rows.
    """
    import numpy as np

    from tunerail.data.embeddings import VectorCache
    from tunerail.models import cache_root, load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(model_name)
    rows = _encode_all(tokenizer, records, template, MAX_PROMPT_TOKENS, MAX_ANSWER_TOKENS)
    keys = [row.key(model_name) for row in rows]
    folder = Path(cache_dir) if cache_dir else cache_root() / "end_scores"
    cache = VectorCache(folder / (hashlib.sha256(model_name.encode()).hexdigest()[:12] + "-v2.npz"))
    missing = {k: row for k, row in zip(keys, rows) if k not in cache}
    CACHE_STATS["hits"] += len(keys) - len(missing)
    CACHE_STATS["scored"] += len(missing)
    if missing:
        model = load_causal_lm(model_name).eval()
        scores = _score_rows(model, tokenizer, list(missing.values()))
        before = [np.nan if s.before_last is None else s.before_last for s in scores]
        cache.update((k, np.array([s.full, b, s.closing, s.finish], np.float32)) for k, s, b in zip(missing, scores, before))
        cache.save()
    return [EndScore(float(v[0]), None if np.isnan(v[1]) else float(v[1]), float(v[2]), float(v[3])) for v in (cache[k] for k in keys)]
