"""Metrics as small pure functions over parallel lists, each wrapping the reference library.

Why wrappers and not our own maths: scikit-learn, rouge-score and sacrebleu are what papers and
leaderboards report, so a number from tunerail must equal theirs (tests assert parity on real
data). What we add is (1) per-example scores, so every headline number gets a bootstrap CI and
a paired test against the base model, and (2) the normalisation rule for classification
(first line, case/space/punctuation folded) that small instruct models need.

Heavy libraries are imported inside the functions that use them.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any, Sequence

import numpy as np

from tunerail.stats import check_same_length

# --- normalisation ------------------------------------------------------------------------

_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_WS = re.compile(r"\s+")


def normalize_answer(text: str) -> str:
    """Fold case, Unicode form, punctuation, underscores and whitespace (SQuAD-style, plus `_`)."""
    text = unicodedata.normalize("NFKC", text or "").casefold().replace("_", " ")
    text = _PUNCT.sub(" ", text)
    return _WS.sub(" ", text).strip()


def first_line(text: str) -> str:
    """The first non-empty line: small models add prose after the label."""
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def match_label(output: str, labels: Sequence[str]) -> str | None:
    """Map a generated answer to a known label by normalised first line; None if none matches."""
    key = normalize_answer(first_line(output))
    table = {normalize_answer(lab): lab for lab in labels}
    return table.get(key)


# --- per-example scores -------------------------------------------------------------------


def exact_match_scores(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    check_same_length(predictions, references)
    return np.array([float(p == r) for p, r in zip(predictions, references)])


def normalized_match_scores(predictions: Sequence[str], references: Sequence[str], *, first_line_only: bool = True) -> np.ndarray:
    check_same_length(predictions, references)
    pick = first_line if first_line_only else (lambda s: s)
    return np.array([float(normalize_answer(pick(p)) == normalize_answer(pick(r))) for p, r in zip(predictions, references)])


def rouge_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-example ROUGE-1/2/L F-measure (rouge-score, Porter stemming as in the paper setup)."""
    from rouge_score import rouge_scorer

    check_same_length(predictions, references)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    out = {k: np.zeros(len(predictions)) for k in ("rouge1", "rouge2", "rougeL")}
    for i, (p, r) in enumerate(zip(predictions, references)):
        s = scorer.score(r, p)
        for k in out:
            out[k][i] = s[k].fmeasure
    return out


def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus BLEU (0-100), the number papers report."""
    import sacrebleu

    check_same_length(predictions, references)
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def corpus_chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    check_same_length(predictions, references)
    return float(sacrebleu.corpus_chrf(list(predictions), [list(references)]).score)


# --- classification -----------------------------------------------------------------------


def classification_report(y_true: Sequence[str], y_pred: Sequence[str | None], *, labels: Sequence[str] | None = None) -> dict[str, Any]:
    """Accuracy, macro/micro P/R/F1, per-class table and confusion matrix (scikit-learn).

    Predictions that match no label (None) count as wrong for every class; they appear in the
    confusion matrix as the extra column ``(no label)``.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    check_same_length(y_true, y_pred)
    labels = list(labels) if labels is not None else sorted(set(y_true))
    none = "(no label)"
    pred = [p if p is not None else none for p in y_pred]
    out: dict[str, Any] = {"accuracy": float(accuracy_score(y_true, pred)), "labels": labels}
    for avg in ("macro", "micro"):
        p, r, f, _ = precision_recall_fscore_support(y_true, pred, labels=labels, average=avg, zero_division=0)
        out[f"{avg}_precision"], out[f"{avg}_recall"], out[f"{avg}_f1"] = float(p), float(r), float(f)
    p, r, f, s = precision_recall_fscore_support(y_true, pred, labels=labels, average=None, zero_division=0)
    out["per_class"] = [
        {"label": lab, "precision": float(pi), "recall": float(ri), "f1": float(fi), "support": int(si)}
        for lab, pi, ri, fi, si in zip(labels, p, r, f, s)
    ]
    cm_labels = labels + ([none] if none in pred else [])
    out["confusion_labels"] = cm_labels
    out["confusion"] = confusion_matrix(y_true, pred, labels=cm_labels).tolist()
    out["unmatched"] = int(sum(p == none for p in pred))
    return out


# --- extraction (entity level) ------------------------------------------------------------


def bio_spans(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """Entity spans ``(type, start, end_exclusive)`` from BIO/IOB2 tags, seqeval's default rules.

    An ``I-X`` that does not continue an ``X`` entity starts a new one (conlleval behaviour).
    """
    spans: set[tuple[str, int, int]] = set()
    kind: str | None = None
    start = 0
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, typ = tag.partition("-")
        continues = prefix == "I" and kind == typ
        if kind is not None and not continues:
            spans.add((kind, start, i))
            kind = None
        if prefix == "B" or (prefix == "I" and not continues):
            kind, start = typ, i
    return spans


def entity_prf(true_spans: Sequence[set], pred_spans: Sequence[set]) -> dict[str, Any]:
    """Micro P/R/F1 over exact-match spans (or ``(field, value)`` pairs), plus per-type counts."""
    check_same_length(true_spans, pred_spans)
    tp = fp = fn = 0
    per: dict[str, list[int]] = {}
    for t, p in zip(true_spans, pred_spans):
        t, p = set(t), set(p)
        for s in t | p:
            c = per.setdefault(str(s[0]), [0, 0, 0])
            c[0] += s in t and s in p
            c[1] += s in p and s not in t
            c[2] += s in t and s not in p
        tp += len(t & p)
        fp += len(p - t)
        fn += len(t - p)
    prec, rec, f1 = _prf(tp, fp, fn)
    return {
        "precision": prec,
        "recall": rec,
        "f1": f1,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "per_type": {k: dict(zip(("precision", "recall", "f1"), _prf(*v)), support=v[0] + v[2]) for k, v in sorted(per.items())},
    }


def answer_object(text: str) -> dict[str, Any] | None:
    """The JSON object of an extraction answer (from its first ``{`` to its last ``}``), or None when it has none."""
    text = (text or "").strip()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        data = json.loads(text[start : end + 1])
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def field_pairs(record: dict[str, Any]) -> set[tuple[str, str]]:
    """A JSON extraction answer as ``{(field, normalised value)}`` for field-level P/R/F1."""
    out = set()
    for key, value in record.items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if v is not None and str(v).strip():
                out.add((str(key), normalize_answer(str(v))))
    return out


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


# --- perplexity ---------------------------------------------------------------------------


def perplexity(nll_sums: Sequence[float], token_counts: Sequence[int]) -> float:
    """Corpus perplexity: exp(total NLL / total tokens), tokens weighted equally."""
    total = float(np.sum(token_counts))
    return float(math.exp(float(np.sum(nll_sums)) / total)) if total else float("nan")
