"""Exact duplicates after normalisation (Unicode NFKC, case folding, whitespace)."""

from __future__ import annotations

import hashlib

from tunerail.data.records import normalize_text
from tunerail.doctor.checks._common import excerpt, found, refs
from tunerail.doctor.context import CheckContext
from tunerail.doctor.registry import register
from tunerail.findings import Finding, Severity


def exact_clusters(texts: list[str]) -> list[tuple[str, list[int]]]:
    """(normalised-text hash, positions) of every group of two or more identical texts."""
    groups: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        key = hashlib.sha1(normalize_text(text).encode("utf-8")).hexdigest()
        groups.setdefault(key, []).append(i)
    return sorted(((k, g) for k, g in groups.items() if len(g) > 1), key=lambda kg: kg[1][0])


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
        out.append(found(Severity.WARNING,
            f"{len(members)} rows are identical after normalisation (first at line {first.line}): "
            f"\"{excerpt(first.prompt)}\" → \"{excerpt(first.completion, 40)}\"",
            "keep one row per cluster (--fix keeps the first)",
            rows=refs(ctx.records, members), cluster=f"exact-{key[:10]}",
            details={"fix_action": "drop_except_first", "size": len(members)}))
    return out
