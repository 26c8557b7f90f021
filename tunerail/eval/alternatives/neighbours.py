"""Alternatives for free-text answers: the nearest training prompt's answer, and extractive summaries.

- ``nearest_neighbour``: the answer of the most similar training prompt (MiniLM cosine); what a
  retrieval FAQ bot ships, and the floor for any generation task.
- ``lead_sentences``: the prompt's first sentences up to the training answers' median length
  (the "lead-3" baseline of summarisation papers, sized to the data).
- ``centroid_sentence``: the prompt's sentence nearest the mean embedding of its sentences (the
  centroid method of extractive summarisation), for summarisation-like data only.
"""

from __future__ import annotations

import re
from statistics import median
from typing import Any

import numpy as np

from tunerail.eval.alternatives.base import Alternative, FitData

SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def sentences(text: str) -> list[str]:
    """``text`` cut at sentence ends and line breaks (a dialogue turn is a sentence), empty pieces dropped."""
    return [s.strip() for s in SENTENCE.split(text) if s.strip()]


def fit_nearest_neighbour(data: FitData) -> tuple[list[str], dict[str, Any]]:
    """Answer each test prompt with the answer of its most similar training prompt (cosine of MiniLM embeddings)."""
    from tunerail.data.embeddings import embed_texts

    emb = embed_texts(data.fit_prompts + data.test_prompts, model=data.embedding_model)
    n_fit = len(data.fit_prompts)
    best, sims = _nearest(emb[n_fit:], emb[:n_fit])
    answers = data.fit_answers
    details = {"encoder": data.embedding_model, "fit_rows": n_fit, "mean_similarity": float(sims.mean()) if len(sims) else None}
    return [answers[i] for i in best], details


def _nearest(queries: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index and cosine of each query's nearest key, in blocks (bounded memory on large training sets)."""
    best = np.zeros(len(queries), dtype=int)
    sims = np.zeros(len(queries))
    for start in range(0, len(queries), 1024):
        block = queries[start : start + 1024] @ keys.T
        best[start : start + 1024] = block.argmax(axis=1)
        sims[start : start + 1024] = block.max(axis=1)
    return best, sims


def fit_lead_sentences(data: FitData) -> tuple[list[str], dict[str, Any]]:
    """The first sentences of each prompt until the training answers' median length (characters) is reached."""
    target = median(len(a) for a in data.fit_answers) if data.fit_answers else 0
    out = []
    for prompt in data.test_prompts:
        picked: list[str] = []
        for s in sentences(prompt):
            if picked and sum(len(p) + 1 for p in picked) >= target:
                break
            picked.append(s)
        out.append(" ".join(picked))
    return out, {"target_chars": target, "fit_rows": len(data.fit_answers)}


def fit_centroid_sentence(data: FitData) -> tuple[list[str], dict[str, Any]]:
    """Each prompt's sentence nearest the mean of its sentences' MiniLM embeddings."""
    from tunerail.data.embeddings import embed_texts

    per_prompt = [sentences(p) or [p] for p in data.test_prompts]
    flat = [s for group in per_prompt for s in group]
    emb = embed_texts(flat, model=data.embedding_model) if flat else np.zeros((0, 1))
    out, start = [], 0
    for group in per_prompt:
        vecs = emb[start : start + len(group)]
        start += len(group)
        out.append(group[int(np.argmax(vecs @ vecs.mean(axis=0)))])
    return out, {"encoder": data.embedding_model, "sentences": len(flat)}


NEAREST_NEIGHBOUR = Alternative(
    "nearest_neighbour",
    "nearest training prompt's answer (MiniLM)",
    "sentence-transformers",
    "a retrieval lookup over your training answers (an embedding index, no generation)",
    fit_nearest_neighbour,
)
LEAD_SENTENCES = Alternative(
    "lead_sentences",
    "lead sentences of the input (extractive)",
    "tunerail (no model)",
    "a rule that returns the input's first sentences (no model at all)",
    fit_lead_sentences,
)
CENTROID_SENTENCE = Alternative(
    "centroid_sentence",
    "input sentence nearest its centroid (MiniLM, extractive)",
    "sentence-transformers",
    "an extractive summariser over MiniLM sentence embeddings",
    fit_centroid_sentence,
)
