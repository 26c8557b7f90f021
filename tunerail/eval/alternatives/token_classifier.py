"""A token classifier fine-tuned from the bundled MiniLM encoder (pretrained, offline) for span extraction.

transformers' ``AutoModelForTokenClassification`` on the local all-MiniLM-L6-v2 folder (6 layers,
22 M parameters), trained on the BIO tags of :mod:`tunerail.eval.alternatives.spans`; each word's
tag is its first sub-token's (the usual label alignment), and the answer JSON is rebuilt from the
predicted spans. Opt-in (``eval.alternatives``): it costs more than the CRF and spaCy together on
2 CPU cores (see ``bench/results/baselines.md``).
"""

from __future__ import annotations

from typing import Any

from tunerail.eval.alternatives.base import Alternative, FitData
from tunerail.eval.alternatives.spans import SpanSchema, tokenize

EPOCHS = 4
BATCH = 16
LEARNING_RATE = 1e-4  # a small encoder on ~700 rows: 5e-5 (the BERT default) left recall low after 4 epochs
MAX_LENGTH = 128  # sub-tokens; a WNUT-17 post is ~40


def fit_minilm_tokens(data: FitData) -> tuple[list[str], dict[str, Any]]:
    """Fine-tune MiniLM with a token-classification head on the training rows' BIO tags; tag the test prompts."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from tunerail.models import resolve_model

    schema = SpanSchema.from_answers(data.fit_answers)
    tags = ["O"] + [f"{p}-{k}" for k in schema.fields for p in ("B", "I")]
    index = {t: i for i, t in enumerate(tags)}
    folder = resolve_model(data.embedding_model)
    tok = AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(data.seed)
    model = AutoModelForTokenClassification.from_pretrained(folder, num_labels=len(tags))
    rows = [schema.tags(p, a) for p, a in zip(data.fit_prompts, data.fit_answers)]
    rows = [(tokens, row_tags) for tokens, row_tags in rows if tokens]
    opt = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    gen = torch.Generator().manual_seed(data.seed)
    model.train()
    for _ in range(EPOCHS):
        order = torch.randperm(len(rows), generator=gen).tolist()
        for start in range(0, len(rows), BATCH):
            batch = [rows[i] for i in order[start : start + BATCH]]
            enc = _encode(tok, [[t[0] for t in tokens] for tokens, _ in batch])
            labels = torch.tensor([_align(enc.word_ids(i), [index[t] for t in bt]) for i, (_, bt) in enumerate(batch)])
            loss = model(**enc, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(data.test_prompts), 64):
            prompts = data.test_prompts[start : start + 64]
            tokens = [tokenize(p) for p in prompts]
            enc = _encode(tok, [[t[0] for t in ts] or ["."] for ts in tokens])
            pred = model(**enc).logits.argmax(-1).tolist()
            for i, (prompt, ts) in enumerate(zip(prompts, tokens)):
                words = _first_subtoken(enc.word_ids(i), pred[i], len(ts))
                out.append(schema.answer(prompt, ts, [tags[w] for w in words]))
    return out, {"encoder": data.embedding_model, "epochs": EPOCHS, "learning_rate": LEARNING_RATE, "fit_rows": len(rows)}


def _encode(tok: Any, words: list[list[str]]) -> Any:
    return tok(words, is_split_into_words=True, truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")


def _align(word_ids: list[int | None], word_tags: list[int]) -> list[int]:
    """Each word's tag on its first sub-token; -100 (ignored by the loss) on the rest and on special tokens."""
    out, prev = [], None
    for w in word_ids:
        out.append(word_tags[w] if w is not None and w != prev else -100)
        prev = w
    return out


def _first_subtoken(word_ids: list[int | None], pred: list[int], n_words: int) -> list[int]:
    """The predicted tag index of each word (its first sub-token's); words cut by truncation are ``O`` (0)."""
    out = [0] * n_words
    prev = None
    for pos, w in enumerate(word_ids):
        if w is not None and w != prev and w < n_words:
            out[w] = pred[pos]
        prev = w
    return out


MINILM_TOKENS = Alternative(
    "minilm_tokens",
    "MiniLM token classifier fine-tuned on your rows",
    "transformers",
    "the fine-tuned MiniLM (90 MB) behind a tokenizer: a few ms per request on a CPU",
    fit_minilm_tokens,
)
