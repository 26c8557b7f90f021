"""Which rows must stay together: duplicate clusters and user-declared groups, merged by union-find.

Sources of "together" edges (each an independent reason two rows may not be separated):

* ``exact``     normalised prompt text identical;
* ``ngram13``   prompts share a 13-gram of words (same test ``leakage`` applies);
* ``near``      MinHash near-duplicate prompts (the doctor's definition);
* ``semantic``  paraphrases: embedding cosine >= ``semantic_threshold`` (optional, costs one
  MiniLM pass: about 1 minute per 10k rows on 2 CPU cores, cached afterwards);
* ``paraphrase`` a row and its nearest neighbour by embedding + character n-gram similarity
  (reworded with a typo or a synonym), with ``semantic``;
* ``user``      the same value in ``data.group_column`` (conversation, document, customer...).

Connected components over all edges (``scipy.sparse.csgraph``) are the groups: transitively,
if A~B and B~C then A, B and C land in the same split.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from tunerail.data.records import Record
from tunerail.split.matching import exact_matches, near_matches, ngram_matches, paraphrase_matches, semantic_matches


@dataclass
class Groups:
    """``labels[k]`` is the group of row ``k``; ``kept_together`` counts multi-row clusters per source."""

    labels: np.ndarray
    kept_together: dict[str, dict[str, int]] = field(default_factory=dict)
    largest: int = 1

    @property
    def n_groups(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def summary(self) -> dict[str, Any]:
        sizes = np.bincount(self.labels) if len(self.labels) else np.zeros(0, int)
        multi = sizes[sizes > 1]
        return {
            "groups": self.n_groups,
            "multi_row_groups": int(len(multi)),
            "rows_in_multi_row_groups": int(multi.sum()),
            "largest_group": int(sizes.max(initial=0)),
            "by_source": self.kept_together,
        }


def _components(n: int, edges: Sequence[tuple[int, int]]) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not edges:
        return np.arange(n)
    a = np.fromiter((e[0] for e in edges), dtype=np.int64, count=len(edges))
    b = np.fromiter((e[1] for e in edges), dtype=np.int64, count=len(edges))
    graph = coo_matrix((np.ones(len(edges), dtype=np.int8), (a, b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels


def _cluster_stats(n: int, edges: Sequence[tuple[int, int]]) -> dict[str, int]:
    sizes = Counter(_components(n, edges).tolist())
    multi = [s for s in sizes.values() if s > 1]
    return {"clusters": len(multi), "rows": sum(multi)}


def _capped(n: int, pairs: Sequence[tuple[int, int, float]], cap: int) -> list[tuple[int, int]]:
    """Nearest-neighbour edges, best first, skipping any that would make a chain longer than ``cap`` rows.

    Templated rows ("question 1 about topic 7", "question 2 about topic 14"...) are each other's
    nearest neighbours and would otherwise chain into one group too big to split.
    """
    parent = list(range(n))
    size = [1] * n

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    kept = []
    for i, j, _ in sorted(pairs, key=lambda p: -p[2]):
        a, b = root(i), root(j)
        if a == b:
            kept.append((i, j))
        elif size[a] + size[b] <= cap:
            parent[b] = a
            size[a] += size[b]
            kept.append((i, j))
    return kept


def find_groups(
    records: Sequence[Record],
    *,
    near_threshold: float = 0.8,
    semantic: bool = False,
    semantic_threshold: float = 0.95,
    embedding_model: str = "bundled:minilm",
    cache_dir: Any = None,
    vectors: np.ndarray | None = None,
    paraphrase_threshold: float | None = None,
) -> Groups:
    """Group ``records`` so that no duplicate, paraphrase or user group can be cut by a split."""
    n = len(records)
    prompts = [r.prompt for r in records]
    sources: dict[str, list[tuple[int, int]]] = {
        "exact": [(i, j) for i, j, _ in exact_matches(prompts)],
        "ngram13": [(i, j) for i, j, _ in ngram_matches(prompts)],
        "near": [(i, j) for i, j, _ in near_matches(prompts, threshold=near_threshold)],
    }
    if semantic:
        if vectors is None:
            from tunerail.split.matching import embed

            vectors = embed(prompts, model=embedding_model, cache_dir=cache_dir)
        sources["semantic"] = [(i, j) for i, j, _ in semantic_matches(vectors, threshold=semantic_threshold)]
        if paraphrase_threshold is not None:
            sources["paraphrase"] = _capped(n, paraphrase_matches(prompts, vectors, paraphrase_threshold), cap=max(10, n // 200))
    by_group: dict[str, list[int]] = {}
    for k, record in enumerate(records):
        if record.group is not None and record.group != "":
            by_group.setdefault(record.group, []).append(k)
    sources["user"] = [(members[0], m) for members in by_group.values() for m in members[1:]]

    kept = {name: _cluster_stats(n, edges) for name, edges in sources.items()}
    labels = _components(n, [e for edges in sources.values() for e in edges])
    # Relabel by first occurrence so labels do not depend on scipy's numbering.
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    remap = np.empty_like(order)
    remap[order] = np.arange(len(order))
    labels = remap[np.searchsorted(np.unique(labels), labels)] if n else labels
    groups = Groups(np.asarray(labels, dtype=np.int64), kept)
    groups.largest = int(np.bincount(groups.labels).max(initial=0)) if n else 0
    kept["all"] = {"clusters": groups.summary()["multi_row_groups"], "rows": groups.summary()["rows_in_multi_row_groups"]}
    return groups
