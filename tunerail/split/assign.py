"""Assign whole groups to train/validation/test, keeping class proportions (a greedy bin packing).

The idea of scikit-learn's ``GroupKFold`` / ``StratifiedGroupKFold``, generalised from k equal
folds to arbitrary shares: groups are taken largest first (ties in a seeded random order) and
each goes to the split that is furthest below its target (in rows of the group's classes). With
singleton groups this degenerates to an exact stratified split; with large groups it is the
best a group-preserving split can do, and the achieved shares are reported, not assumed.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def assign_groups(groups: np.ndarray, classes: Sequence[str] | None, shares: Sequence[float], seed: int) -> np.ndarray:
    """Return ``split[k]`` in ``range(len(shares))`` for every row; rows of a group share a split.

    Parameters
    ----------
    groups : int array (n,)
        Group id of every row (0..G-1).
    classes : sequence of labels or None
        Stratify on these (None: one pseudo-class, i.e. only sizes are balanced).
    shares : target fraction per split, summing to 1.
    seed : the same inputs and seed give the same assignment.
    """
    n = len(groups)
    share_of = np.asarray(shares, dtype=float)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if classes is None:
        class_ids = np.zeros(n, dtype=np.int64)
    else:
        _, class_ids = np.unique(np.asarray([str(c) for c in classes]), return_inverse=True)
    n_groups, n_classes = int(groups.max()) + 1, int(class_ids.max()) + 1
    # counts[g, c]: rows of class c in group g (sparse in practice; groups are small).
    members: list[list[int]] = [[] for _ in range(n_groups)]
    for k, g in enumerate(groups.tolist()):
        members[g].append(k)
    class_totals = np.bincount(class_ids, minlength=n_classes).astype(float)
    targets = share_of[:, None] * class_totals[None, :]  # (splits, classes)
    size_targets = share_of * n
    filled = np.zeros_like(targets)
    sizes = np.zeros(len(share_of))

    rng = np.random.default_rng(seed)
    tiebreak = rng.permutation(n_groups)
    group_sizes = np.array([len(m) for m in members])
    order = np.lexsort((tiebreak, -group_sizes))  # largest first, seeded order among equals

    out = np.empty(n, dtype=np.int64)
    for g in order.tolist():
        rows = members[g]
        cls, counts = np.unique(class_ids[rows], return_counts=True)
        # Deficit in rows of each split on this group's classes (how many more rows of these
        # classes it should get), plus the overall size deficit spread over the classes, so that
        # per-class rounding does not drift the same way in every class.
        need = (targets[:, cls] - filled[:, cls]) @ counts / counts.sum()
        size_need = (size_targets - sizes) / n_classes
        score = need + size_need
        best = int(np.flatnonzero(score == score.max())[0]) if np.isfinite(score).all() else 0
        out[rows] = best
        filled[best, cls] += counts
        sizes[best] += len(rows)
    return out
