"""Near-duplicate detection with MinHash LSH (rensa), clustered with union-find.

No O(n^2) step: candidates come from LSH buckets, and each candidate pair is confirmed by
its MinHash Jaccard estimate before it joins a cluster.
"""

from __future__ import annotations

import re
from typing import Sequence

from tunerail.data.records import normalize_text

_WORD = re.compile(r"\w+", re.UNICODE)


def shingles(text: str, ngram: int = 3) -> list[str]:
    """Word n-grams of the normalised text; texts shorter than ``ngram`` words are one shingle."""
    words = _WORD.findall(normalize_text(text))
    if len(words) <= ngram:
        return [" ".join(words)] if words else [""]
    return [" ".join(words[i:i + ngram]) for i in range(len(words) - ngram + 1)]


def minhashes(texts: Sequence[str], num_perm: int = 128, ngram: int = 3, seed: int = 42) -> list:
    from rensa import RMinHash

    out = []
    for text in texts:
        mh = RMinHash(num_perm=num_perm, seed=seed)
        mh.update(shingles(text, ngram))
        out.append(mh)
    return out


def _bands_for(threshold: float, num_perm: int) -> int:
    """Pick the band count whose S-curve midpoint (1/b)^(1/r) is just below ``threshold``."""
    best, best_gap = 1, float("inf")
    for bands in range(1, num_perm + 1):
        if num_perm % bands:
            continue
        rows = num_perm // bands
        midpoint = (1 / bands) ** (1 / rows)
        gap = threshold - midpoint
        if 0 <= gap < best_gap:  # midpoint below threshold: favours recall; Jaccard check restores precision
            best, best_gap = bands, gap
    return best


def near_duplicate_pairs(texts: Sequence[str], threshold: float = 0.8, num_perm: int = 128,
                         ngram: int = 3) -> list[tuple[int, int, float]]:
    """Pairs (i < j, estimated Jaccard) of texts at or above ``threshold``."""
    from rensa import RMinHashLSH

    hashes = minhashes(texts, num_perm=num_perm, ngram=ngram)
    lsh = RMinHashLSH(threshold=threshold, num_perm=num_perm, num_bands=_bands_for(threshold, num_perm))
    for i, mh in enumerate(hashes):
        lsh.insert(i, mh)
    pairs = []
    for i, mh in enumerate(hashes):
        for j in lsh.query(mh):
            if j > i:
                score = mh.jaccard(hashes[j])
                if score >= threshold:
                    pairs.append((i, j, float(score)))
    return sorted(pairs)


def clusters_from_pairs(n: int, pairs: Sequence[tuple[int, int, float]] | Sequence[tuple[int, int]]) -> list[list[int]]:
    """Connected components (size >= 2) of the pair graph, each sorted, ordered by first member."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for pair in pairs:
        a, b = find(pair[0]), find(pair[1])
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def near_duplicate_clusters(texts: Sequence[str], threshold: float = 0.8, num_perm: int = 128,
                            ngram: int = 3) -> list[list[int]]:
    """Clusters of near-duplicate texts (positions into ``texts``)."""
    return clusters_from_pairs(len(texts), near_duplicate_pairs(texts, threshold, num_perm, ngram))
