"""Pair finders shared by ``split`` (within one set, to build groups) and ``leakage`` (across sets).

Every finder has the same shape: ``finder(queries, corpus, ...) -> [(i, j, score)]`` where ``i``
indexes ``corpus`` and ``j`` indexes ``queries``. Passing ``corpus=None`` matches a set against
itself and keeps each unordered pair once (``i < j``). Using the same finders on both sides is what
makes the guarantee hold: a pair that ``leakage`` would flag is a pair that ``split`` grouped.

Methods (cheapest first):

* ``exact``: equal after :func:`tunerail.data.records.normalize_text` (NFKC, casefold, spaces).
* ``ngram13``: share at least one 13-gram of normalised words, the GPT-3 / lm-evaluation-harness
  contamination convention; a text shorter than 13 words is one "gram" (the whole text).
* ``near``: MinHash (rensa) LSH candidates confirmed by exact Jaccard of normalised word sets
  (the doctor's near-duplicate definition).
* ``semantic``: cosine similarity of normalised sentence embeddings (blocked matrix products).
* ``paraphrase``: a row and its nearest neighbour by embedding + character n-gram similarity
  (:func:`paraphrase_matches`); computed over the union of the sets, so ``split`` and ``leakage``
  see the same pairs.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from tunerail.data.records import normalize_text

Pair = tuple[int, int, float]
_WORD = re.compile(r"\w+", re.UNICODE)
NGRAM = 13
METHODS = ("exact", "ngram13", "near", "semantic", "paraphrase")


def _self_pairs(pairs: list[Pair]) -> list[Pair]:
    """For a set matched against itself: drop i == j, keep (min, max) once, best score."""
    best: dict[tuple[int, int], float] = {}
    for i, j, s in pairs:
        if i == j:
            continue
        key = (i, j) if i < j else (j, i)
        if s > best.get(key, -1.0):
            best[key] = s
    return sorted((a, b, s) for (a, b), s in best.items())


def exact_matches(queries: Sequence[str], corpus: Sequence[str] | None = None) -> list[Pair]:
    """Pairs whose normalised texts are identical (score 1.0)."""
    same = corpus is None
    index: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(corpus if corpus is not None else queries):
        index[normalize_text(text)].append(i)
    pairs: list[Pair] = []
    for j, text in enumerate(queries):
        for i in index.get(normalize_text(text), ()):
            pairs.append((i, j, 1.0))
    return _self_pairs(pairs) if same else pairs


def word_ngrams(text: str, n: int = NGRAM) -> set[int]:
    """Hashes of the word ``n``-grams of the normalised text; a shorter text is one gram."""
    words = _WORD.findall(normalize_text(text))
    if not words:
        return set()
    if len(words) < n:
        return {hash(tuple(words))}
    return {hash(tuple(words[k : k + n])) for k in range(len(words) - n + 1)}


def ngram_matches(queries: Sequence[str], corpus: Sequence[str] | None = None, n: int = NGRAM, max_postings: int = 1000) -> list[Pair]:
    """Pairs sharing at least one word ``n``-gram; score = shared grams / grams of the shorter text.

    ``max_postings`` skips grams found in more rows than that (boilerplate such as a shared system
    prompt), which would otherwise produce a quadratic number of pairs; the number skipped is
    small and they are not content.
    """
    same = corpus is None
    corpus_grams = [word_ngrams(t, n) for t in (corpus if corpus is not None else queries)]
    query_grams = corpus_grams if same else [word_ngrams(t, n) for t in queries]
    postings: dict[int, list[int]] = defaultdict(list)
    for i, grams in enumerate(corpus_grams):
        for g in grams:
            postings[g].append(i)
    pairs: list[Pair] = []
    for j, grams in enumerate(query_grams):
        shared: dict[int, int] = defaultdict(int)
        for g in grams:
            rows = postings.get(g, ())
            if len(rows) > max_postings:
                continue
            for i in rows:
                shared[i] += 1
        for i, count in shared.items():
            denom = max(1, min(len(grams), len(corpus_grams[i])))
            pairs.append((i, j, min(1.0, count / denom)))
    return _self_pairs(pairs) if same else pairs


def near_matches(queries: Sequence[str], corpus: Sequence[str] | None = None, threshold: float = 0.8) -> list[Pair]:
    """Near-duplicates by the doctor's definition: MinHash LSH candidates over normalised word sets,
    confirmed by exact Jaccard >= ``threshold`` (:mod:`tunerail.doctor.near_duplicates`).

    Reusing the doctor's finders keeps ``doctor``, ``split`` and ``leakage`` in agreement on what a
    near-duplicate is. Against itself, exact copies are paired with their first occurrence only,
    which is all that grouping needs.
    """
    from tunerail.doctor.near_duplicates import near_duplicate_matches, near_duplicate_pairs

    if corpus is None:
        return [(i, j, float(s)) for i, j, s in near_duplicate_pairs(list(queries), threshold=threshold)]
    return [(c, q, float(s)) for q, c, s in near_duplicate_matches(list(queries), list(corpus), threshold=threshold)]


def semantic_matches(
    query_vectors: np.ndarray, corpus_vectors: np.ndarray | None = None, threshold: float = 0.95, block: int = 2048
) -> list[Pair]:
    """Pairs of L2-normalised embeddings with cosine >= ``threshold`` (exact, blocked ``Q @ C.T``)."""
    same = corpus_vectors is None
    corpus = query_vectors if corpus_vectors is None else corpus_vectors
    pairs: list[Pair] = []
    if len(query_vectors) == 0 or len(corpus) == 0:
        return pairs
    corpus_t = np.ascontiguousarray(corpus.T, dtype=np.float32)
    for start in range(0, len(query_vectors), block):
        sims = np.asarray(query_vectors[start : start + block], dtype=np.float32) @ corpus_t
        js, iz = np.nonzero(sims >= threshold)
        for j, i in zip(js.tolist(), iz.tolist()):
            pairs.append((i, start + j, float(min(1.0, sims[j, i]))))
    return _self_pairs(pairs) if same else pairs


def paraphrase_matches(texts: Sequence[str], vectors: np.ndarray, threshold: float = 0.5) -> list[Pair]:
    """Each row paired with its single most similar other row, when that similarity >= ``threshold``.

    Similarity = mean of the embedding cosine (synonyms, rewording) and the cosine of character
    3-5-gram TF-IDF vectors (typos, which move a small encoder's embedding a lot). A short query
    reworded with a typo or a synonym ("Why was I double charged?" / "How come was I double
    billed?") sits below any global cosine threshold that would not also chain whole intents
    together, but it is its source's nearest neighbour. Linking only nearest neighbours keeps
    groups small: each row adds at most one edge.

    Measured on Banking77 (10,003 rows + 300 planted rewordings, bench/split_leakage.py): see
    the bench results for the share of planted pairs kept together and the group sizes.
    Cost: one pass of blocked dense and sparse products over all rows (O(n^2)).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    n = len(texts)
    if n < 2:
        return []
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, lowercase=True, dtype=np.float32).fit_transform(
        [normalize_text(t) for t in texts]
    )
    chars_t = chars.T.tocsr()
    vec = np.asarray(vectors, dtype=np.float32)
    vec_t = np.ascontiguousarray(vec.T)
    block = max(32, min(2048, 20_000_000 // n))
    pairs: list[Pair] = []
    for start in range(0, n, block):
        stop = min(n, start + block)
        sims = vec[start:stop] @ vec_t
        sims += (chars[start:stop] @ chars_t).toarray()
        sims *= 0.5
        sims[np.arange(stop - start), np.arange(start, stop)] = -1.0  # not itself
        best = sims.argmax(axis=1)
        score = sims[np.arange(stop - start), best]
        for k in np.nonzero(score >= threshold)[0].tolist():
            pairs.append((start + k, int(best[k]), float(min(1.0, score[k]))))
    return _self_pairs(pairs)


def embed(texts: Sequence[str], model: str = "bundled:minilm", cache_dir: Any = None) -> np.ndarray:
    """Sentence embeddings (cached by content) through the shared data layer."""
    from tunerail.data.embeddings import embed_texts

    return embed_texts(list(texts), model=model, cache_dir=cache_dir)
