"""Near-duplicate LSH on real Banking77 rows: planted word edits, exact-Jaccard truth, cross-set matches."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from tunerail.doctor.near_duplicates import (
    clusters_from_pairs,
    jaccard,
    lsh_bands,
    near_duplicate_clusters,
    near_duplicate_matches,
    near_duplicate_pairs,
    shingles,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "banking77" / "train.csv"


@pytest.fixture(scope="module")
def queries() -> list[str]:
    return [r["text"] for r in csv.DictReader(open(EXAMPLE, newline=""))]


def _edit(text: str, rng: random.Random, vocab: list[str]) -> str:
    """One word edit (substitute, insert or delete) in a query of >= 10 words."""
    words = text.split()
    i = rng.randrange(len(words))
    op = rng.choice("sid")
    if op == "s":
        words[i] = rng.choice(vocab)
    elif op == "i":
        words.insert(i, rng.choice(vocab))
    else:
        del words[i]
    return " ".join(words)


def _exact_pairs(texts: list[str], threshold: float) -> set[tuple[int, int]]:
    """Brute-force truth for a small set (test only)."""
    sets = [shingles(t) for t in texts]
    return {(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts)) if jaccard(sets[i], sets[j]) >= threshold}


def test_shingles_are_normalised_word_sets():
    assert shingles("How do I  TOP-UP my card?") == {"how", "do", "i", "top", "up", "my", "card"}
    assert shingles("") == {""}
    assert shingles("a b c d", ngram=3) == {"a b c", "b c d"}
    assert shingles("a b", ngram=3) == {"a b"}


def test_bands_catch_a_pair_at_the_threshold():
    for threshold, num_perm in [(0.8, 128), (0.8, 256), (0.7, 256), (0.9, 64)]:
        bands = lsh_bands(threshold, num_perm)
        rows = num_perm // bands
        assert num_perm % bands == 0
        assert 1 - (1 - threshold**rows) ** bands >= 0.99


def test_planted_word_edits_in_real_queries_are_found_with_exact_rows(queries):
    rng = random.Random(7)
    vocab = sorted({w for q in queries for w in q.split()})
    base = queries[:600]
    sources = [i for i, q in enumerate(base) if len(q.split()) >= 10][:40]
    texts = list(base)
    planted = {}
    for src in sources:
        planted[src] = len(texts)
        texts.append(_edit(texts[src], rng, vocab))
    truth = _exact_pairs(texts, 0.8)
    found = {(i, j) for i, j, _ in near_duplicate_pairs(texts, threshold=0.8)}
    clusters = near_duplicate_clusters(texts, threshold=0.8)
    together = {(a, b) for c in clusters for a in c for b in c if a < b}
    # every reported pair is a true pair (exact verification), and the truth lands in the clusters
    assert found <= truth
    assert truth <= together
    hit = sum((src, copy) in together for src, copy in planted.items())
    assert hit >= 0.9 * len(planted)
    # clean rows (not planted, not genuinely near-identical in the real data) are not flagged
    flagged = {m for c in clusters for m in c}
    real_truth_rows = {m for pair in _exact_pairs(base, 0.8) for m in pair}
    assert flagged - set(planted) - set(planted.values()) <= real_truth_rows


def test_exact_copies_are_one_cluster_without_quadratic_pairs(queries):
    texts = [queries[0]] * 50 + queries[1:100] + [queries[0].upper() + "  "]
    pairs = near_duplicate_pairs(texts)
    copies = [p for p in pairs if p[0] == 0]
    assert len(copies) == 50  # each copy paired with the first occurrence only, not 51*50/2
    clusters = clusters_from_pairs(len(texts), pairs)
    assert clusters[0][:50] == list(range(50)) and clusters[0][-1] == len(texts) - 1


def test_cross_set_matches_for_leakage(queries):
    rng = random.Random(3)
    vocab = sorted({w for q in queries for w in q.split()})
    corpus = queries[:800] + [queries[5]]  # a duplicate inside the corpus: both reported
    long_ones = [i for i, q in enumerate(queries[:800]) if len(q.split()) >= 10][:20]
    leaked = [_edit(queries[i], rng, vocab) for i in long_ones]
    fresh = queries[1000:1100]
    matches = near_duplicate_matches(leaked + fresh, corpus, threshold=0.8)
    got = {(q, c) for q, c, _ in matches}
    hits = sum((k, src) in got for k, src in enumerate(long_ones))
    assert hits >= 0.9 * len(long_ones)
    for q, c, score in matches:  # every match is real
        assert score == jaccard(shingles((leaked + fresh)[q]), shingles(corpus[c])) >= 0.8
    assert near_duplicate_matches([], corpus) == [] and near_duplicate_matches(fresh, []) == []


def test_deterministic_and_chunking_invariant(queries):
    texts = queries[:500] + queries[:50]
    assert near_duplicate_pairs(texts) == near_duplicate_pairs(texts, chunk_size=64)


def test_a_bucket_of_many_similar_rows_stays_one_cluster_with_linear_pairs():
    base = "please tell me how i can top up my card using my bank account today"
    texts = [f"{base} variant{k}" for k in range(1200)]  # every pair has Jaccard 14/16
    pairs = near_duplicate_pairs(texts)
    assert clusters_from_pairs(len(texts), pairs) == [list(range(1200))]
    assert len(pairs) < 100 * len(texts) < len(texts) * (len(texts) - 1) // 2
