"""Label quality (cleanlab on cross-validated probabilities) and content outliers in MiniLM embedding space."""

from __future__ import annotations

import numpy as np

from tunerail.doctor.checks._common import excerpt, found
from tunerail.doctor.context import CheckContext
from tunerail.doctor.registry import register
from tunerail.findings import Finding, Severity

MIN_ROWS = 30  # below this, a cross-validated classifier or a kNN fence says nothing reliable
OUTLIER_K = 10


@register("DOC060", "labels.likely_mislabeled", needs=("embeddings", "labels"))
def likely_mislabeled(ctx: CheckContext) -> list[Finding]:
    """Rows whose label disagrees with what the rest of the data teaches (cross-validated, cleanlab-ranked).

    Two cheap classifiers predict each row's class out of sample (5-fold ``cross_val_predict``):
    a logistic regression on the prompt embeddings and one on TF-IDF word and character
    n-grams; their probabilities are averaged. A row is flagged when another class is clearly
    likelier than its given label: ahead by ``doctor.mislabel_margin`` (default 0.4) or at
    least ten times as likely. Ranked by cleanlab's ``get_label_quality_scores`` (normalized
    margin), worst first.
    Anti-pattern: training on flipped labels teaches the confusion and caps accuracy. Fix:
    check the flagged rows (worst first) and relabel them with the suggested label if right.
    """
    from tunerail.doctor.semantic import label_issues

    labels = [r.label for r in ctx.records]
    if len(ctx.records) < MIN_ROWS or any(lab is None for lab in labels):
        return []
    audit = label_issues(ctx.prompt_embeddings, [str(lab) for lab in labels], ctx.prompts, min_margin=ctx.config.doctor.mislabel_margin)
    if audit is None:
        return []
    findings = []
    for rank, k in enumerate(audit.issues, start=1):
        pos = int(audit.rows[k])
        rec = ctx.records[pos]
        probs = audit.pred_probs[k]
        suggested = int(np.argmax(probs))
        findings.append(
            found(
                Severity.WARNING,
                f"label '{rec.label}' looks wrong: classifiers trained on the other rows say "
                f"'{audit.classes[suggested]}' ({probs[suggested]:.0%}, '{rec.label}' {probs[audit.given[k]]:.0%}) "
                f'for "{excerpt(rec.prompt)}"',
                f"check the row; relabel it '{audit.classes[suggested]}' if that is right, or drop it if ambiguous",
                rows=[rec.ref],
                details={
                    "given": rec.label,
                    "suggested": audit.classes[suggested],
                    "confidence": round(float(probs[suggested]), 4),
                    "given_probability": round(float(probs[audit.given[k]]), 4),
                    "margin": round(float(audit.margin[k]), 4),
                    "label_quality": round(float(audit.quality[k]), 4),
                    "rank": rank,
                    "models": audit.models,
                    "folds": audit.folds,
                },
            )
        )
    return findings


@register("DOC061", "content.outlier", needs=("embeddings",))
def outliers(ctx: CheckContext) -> list[Finding]:
    """Off-topic rows: far from their nearest neighbours in embedding space (cleanlab kNN scores).

    For classification the neighbours are rows of the same class (a row unlike the rest of its
    class), otherwise the whole dataset. A row beyond cleanlab Datalab's fence
    (Q3 + 1.7 IQR of the kNN distance) is reported; beyond Q3 + 3 IQR (Tukey's far out) as a
    warning, else info. Fix: read it; drop it if it is noise or off-topic, keep it if it is a
    rare case the model should learn (then add more like it).
    """
    from tunerail.doctor.semantic import outlier_scores

    emb = ctx.prompt_embeddings
    if ctx.is_classification:
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(ctx.records):
            groups.setdefault(str(r.label), []).append(i)
        parts: list[tuple[str | None, np.ndarray]] = [
            (label, np.array(ix)) for label, ix in sorted(groups.items()) if len(ix) > OUTLIER_K + 1
        ]
    else:
        parts = [(None, np.arange(len(ctx.records)))] if len(ctx.records) >= MIN_ROWS else []
    findings = []
    for label, ix in parts:
        result = outlier_scores(emb[ix], k=OUTLIER_K)
        for k in np.flatnonzero(result.is_outlier):
            rec = ctx.records[int(ix[k])]
            far = result.distance[k] > result.far_fence
            scope = f"class '{label}'" if label is not None else "the dataset"
            findings.append(
                found(
                    Severity.WARNING if far else Severity.INFO,
                    f'row is unlike the rest of {scope} (outlier score {result.scores[k]:.3f}): "{excerpt(rec.prompt)}"',
                    "read it: drop it if it is noise or off-topic; if it is a real rare case, add more rows like it",
                    rows=[rec.ref],
                    details={
                        "score": round(float(result.scores[k]), 4),
                        "relative_knn_distance": round(float(result.distance[k]), 4),
                        "fence": round(float(result.fence), 4),
                        "scope": label if label is not None else "all",
                    },
                )
            )
    return findings
