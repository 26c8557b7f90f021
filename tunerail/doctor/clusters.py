"""Rows grouped into clusters: connected components of a pair graph, and rows grouped by a label."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def merge_components(labels: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label per node after adding edges ``a``-``b`` (scipy connected components on the labels)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(labels)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (labels[a], labels[b])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    return component[labels]


def groups_of(row_labels: np.ndarray) -> list[list[int]]:
    """Rows grouped by equal label (groups of two or more, each sorted, ordered by first member).

    One argsort instead of a dict of lists: a 1M-row file costs 8 bytes per row.
    """
    order = np.argsort(row_labels, kind="stable")
    sorted_labels = row_labels[order]
    cuts = np.nonzero(sorted_labels[1:] != sorted_labels[:-1])[0] + 1
    groups = [g.tolist() for g in np.split(order, cuts) if len(g) > 1]
    return sorted(groups, key=lambda g: g[0])


class _UnionFind:
    """Disjoint sets over 0..n-1; the root of a set is its smallest member."""

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def clusters_from_pairs(n: int, pairs: Sequence[tuple[int, int, float]] | Sequence[tuple[int, int]]) -> list[list[int]]:
    """Connected components (size >= 2) of the pair graph, each sorted, ordered by first member."""
    components = _UnionFind(n)
    for pair in pairs:
        components.union(pair[0], pair[1])
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(components.find(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])
