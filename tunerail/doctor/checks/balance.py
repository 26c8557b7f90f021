"""Balance and size: class imbalance, classes too small to learn or test, and data too small
for the task or for an honest validation and test split."""

from __future__ import annotations

import math
from collections import Counter

from tunerail.doctor.checks._common import found, refs
from tunerail.doctor.context import CheckContext
from tunerail.doctor.registry import register
from tunerail.findings import Finding, Severity
from tunerail.stats import planning_proportion, rows_needed, wilson_half_width


def label_counts(ctx: CheckContext) -> Counter:
    return Counter(r.label for r in ctx.records if r.label is not None)


@register("DOC049", "balance.single_class", needs=("labels",))
def single_class(ctx: CheckContext) -> list[Finding]:
    """A classification dataset whose rows all carry one label: there is nothing to tell apart.

    Anti-pattern: an export filtered to one intent (or a label column that is constant); the model
    learns to answer that label, and accuracy on a test set of the same label is 100 %.
    Fix: add rows of the other classes, or map the real label column in ``data.columns.label``.
    """
    counts = label_counts(ctx)
    if len(counts) != 1 or not ctx.is_classification:
        return []
    (label, n) = next(iter(counts.items()))
    return [
        found(
            Severity.ERROR,
            f"every labelled row ({n}) has the same label '{label}': a classifier needs at least two classes",
            "add rows of the other classes, or map the real label column in data.columns.label",
            details={"label": label, "count": n},
        )
    ]


@register("DOC045", "balance.imbalance", needs=("labels",))
def imbalance(ctx: CheckContext) -> list[Finding]:
    """Classes whose sizes differ by more than ``doctor.max_imbalance_ratio`` (largest / smallest).

    Anti-pattern: the model learns to predict the majority class and accuracy hides it. Fix:
    collect more rows of the small classes, downsample the large ones, or judge by macro-F1
    (``criteria.metric: macro_f1``) and set ``criteria.per_class_floor``.
    """
    counts = label_counts(ctx)
    if len(counts) < 2:
        return []
    (big, n_big), (small, n_small) = max(counts.items(), key=lambda kv: (kv[1], kv[0])), min(counts.items(), key=lambda kv: (kv[1], kv[0]))
    ratio = n_big / n_small
    if ratio <= ctx.config.doctor.max_imbalance_ratio:
        return []
    return [
        found(
            Severity.WARNING,
            f"class '{big}' has {n_big} rows, class '{small}' only {n_small}: ratio {ratio:.1f} > {ctx.config.doctor.max_imbalance_ratio:g}",
            "add rows to the small classes or downsample the large ones; judge by macro_f1 and set criteria.per_class_floor",
            details={"ratio": round(ratio, 2), "largest": big, "smallest": small, "counts": dict(sorted(counts.items()))},
        )
    ]


@register("DOC046", "balance.small_class", needs=("labels",))
def small_class(ctx: CheckContext) -> list[Finding]:
    """Classes with fewer than ``doctor.min_rows_per_class`` rows: too few to learn, and too few to test.

    Fix: add rows for the class, merge it into a related one, or drop it.
    """
    limit = ctx.config.doctor.min_rows_per_class
    members: dict[str, list[int]] = {}
    for i, rec in enumerate(ctx.records):
        if rec.label is not None:
            members.setdefault(rec.label, []).append(i)
    out = []
    for label, rows in sorted(members.items()):
        if len(rows) < limit:
            out.append(
                found(
                    Severity.WARNING,
                    f"class '{label}' has only {len(rows)} rows (doctor.min_rows_per_class = {limit})",
                    f"add at least {limit - len(rows)} rows for '{label}', merge it into a related class, or drop it",
                    rows=refs(ctx.records, rows),
                    details={"label": label, "count": len(rows)},
                )
            )
    return out


@register("DOC047", "size.too_small")
def too_small(ctx: CheckContext) -> list[Finding]:
    """Generation data below ``doctor.min_rows_generation`` rows (default 1,000).

    Anti-pattern: a few hundred examples teach format, not skill, and leave too little to
    evaluate. Fix: collect more rows, or start with prompting before fine-tuning.
    """
    if ctx.is_classification:
        return []
    n, limit = len(ctx.records), ctx.config.doctor.min_rows_generation
    if n >= limit:
        return []
    return [
        found(
            Severity.WARNING,
            f"{n} rows for a {ctx.task} task; below {limit:,} a fine-tune rarely beats a good prompt",
            f"collect at least {limit - n:,} more rows, or compare against prompting the base model first",
            details={"rows": n, "minimum": limit},
        )
    ]


@register("DOC048", "size.eval_split")
def eval_split(ctx: CheckContext) -> list[Finding]:
    """Whether the data leaves a >= 10 % validation set and a test set precise enough for ``criteria.margin``.

    The test set needs the rows whose 95 % Wilson half-width is ``margin`` at the success threshold
    (worst case 0.5 without one: 381 rows at ±0.05; ``tunerail.stats.rows_needed``), as split asks. Fix: raise ``split.test``, collect more data, or accept a
    wider ``criteria.margin``.
    """
    n = len(ctx.records)
    if n == 0:
        return []
    margin = ctx.config.criteria.margin
    p = planning_proportion(ctx.config.criteria.threshold)  # the same size split asks for
    needed = rows_needed(margin, p)
    split = ctx.config.split
    test_rows = math.floor(n * split.test)
    val_rows = math.ceil(n * max(0.1, split.validation))
    details = {
        "rows": n,
        "test_rows": test_rows,
        "validation_rows": val_rows,
        "test_rows_needed": needed,
        "margin": margin,
        "half_width": round(wilson_half_width(test_rows, p), 4),
    }
    if test_rows >= needed:
        return [
            found(
                Severity.INFO,
                f"split.test = {split.test:g} gives {test_rows} test rows (±{wilson_half_width(test_rows, p):.3f} at 95 %), "
                f"enough for criteria.margin = {margin:g}; {val_rows} rows for validation",
                "nothing to do",
                details=details,
            )
        ]
    train_left = n - needed - val_rows
    if train_left >= n / 2:
        return [
            found(
                Severity.WARNING,
                f"split.test = {split.test:g} gives {test_rows} test rows, a 95 % CI of ±{wilson_half_width(test_rows, p):.3f}; "
                f"criteria.margin = {margin:g} needs {needed} rows",
                f"set split.test to at least {math.ceil(1000 * needed / n) / 1000:g} ({needed} rows), leaving {train_left} rows for training",
                details=details,
            )
        ]
    return [
        found(
            Severity.WARNING,
            f"{n} rows cannot give both a 10 % validation set ({val_rows}) and a test set of {needed} rows "
            f"(criteria.margin = {margin:g}) while keeping half the data for training",
            f"collect about {2 * (needed + val_rows) - n} more rows, or widen criteria.margin "
            f"(with {test_rows} test rows the 95 % CI is ±{wilson_half_width(test_rows, p):.3f})",
            details=details,
        )
    ]
