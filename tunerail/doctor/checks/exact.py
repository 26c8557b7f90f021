"""Exact duplicates after normalisation (Unicode NFKC, case folding, whitespace)."""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from tunerail.data.records import normalized_pieces
from tunerail.doctor.checks._common import excerpt, found, refs
from tunerail.doctor.context import CheckContext
from tunerail.doctor.near_duplicates import groups_of
from tunerail.doctor.registry import register
from tunerail.findings import Finding, Severity


def _sha1(text: str) -> bytes:
    """SHA-1 of ``normalize_text(text)``, fed piece by piece (a 50 MB row is never normalised whole)."""
    h = hashlib.sha1()
    for piece in normalized_pieces(text):
        h.update(piece.encode("utf-8"))
    return h.digest()


def exact_clusters(texts: Sequence[str]) -> list[tuple[str, list[int]]]:
    """(normalised-text hash, positions) of every group of two or more identical texts.

    Rows are grouped by the first 8 bytes of the hash in a numpy array (8 bytes per row, no
    text or hex string kept per row); only a reported cluster's full hash is recomputed.
    """
    keys = np.fromiter((int.from_bytes(_sha1(t)[:8], "big") for t in texts), dtype=np.uint64, count=len(texts))
    return [(_sha1(texts[g[0]]).hex(), g) for g in groups_of(keys)]


@register("DOC010", "duplicates.exact")
def exact_duplicates(ctx: CheckContext) -> list[Finding]:
    """Rows whose prompt and answer are identical after NFKC, case folding and whitespace collapse.

    Anti-pattern: duplicates weigh some examples several times in training and, once split,
    leak the same row into train and test, inflating the score. Fix: keep the first of each
    cluster (``--fix`` does so). Every member is listed; ``cluster`` names the group.
    """
    out = []
    for key, members in exact_clusters(ctx.texts):
        first = ctx.records[members[0]]
        out.append(
            found(
                Severity.WARNING,
                f"{len(members)} rows are identical after normalisation (first at line {first.line}): "
                f'"{excerpt(first.prompt)}" → "{excerpt(first.completion, 40)}"',
                "keep one row per cluster (--fix keeps the first)",
                rows=refs(ctx.records, members),
                cluster=f"exact-{key[:10]}",
                details={"fix_action": "drop_except_first", "size": len(members)},
            )
        )
    return out
