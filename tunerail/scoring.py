"""Score one model's outputs for a task: per-example arrays plus corpus statistics over indices.

Every metric is exposed as either a per-example array (its mean is the metric: accuracy,
ROUGE, exact match) or a function ``idx -> value`` (macro-F1, BLEU, chrF, field-F1), so the
same code gives the headline value (``idx = all``), bootstrap CIs and paired differences.
Corpus functions use sufficient statistics (confusion counts, sacrebleu's n-gram stats, the
same approach as ``sacrebleu.significance``) so a 1,000-resample bootstrap costs milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from tunerail.config import TASK_METRICS
from tunerail import metrics as M

IndexStat = Callable[[np.ndarray], float]


def check_metric(task: str, metric: str, label_ranking: bool = False) -> None:
    """Fail fast, naming the allowed metrics, when the main metric does not exist for the task."""
    from tunerail.errors import Problem, TunerailError

    allowed = [m for m in TASK_METRICS[task] if label_ranking or m != "accuracy_ranking"]
    if metric not in allowed:
        fix = f"use one of: {', '.join(allowed)}"
        if metric == "accuracy_ranking":
            fix = "set eval.label_ranking: true, or " + fix
        raise TunerailError(Problem(f"criteria.metric {metric!r} is not computed for task {task!r}", field="criteria.metric", fix=fix))


@dataclass
class ModelScores:
    per_example: dict[str, np.ndarray]
    corpus: dict[str, IndexStat]
    primary: np.ndarray  # per-example score used for review ordering and slices
    predictions: list[Any]  # mapped labels (classification) or raw outputs
    details: dict[str, Any] = field(default_factory=dict)

    def statistic(self, name: str) -> IndexStat:
        if name in self.corpus:
            return self.corpus[name]
        arr = self.per_example[name]
        return lambda idx: float(arr[idx].mean())


def score_classification(
    references: Sequence[str], outputs: Sequence[str], labels: Sequence[str], *, ranked: Sequence[str] | None = None
) -> ModelScores:
    """First-line normalised match to a known label; macro/micro P/R/F1 from confusion counts."""
    preds = [M.match_label(o, labels) for o in outputs]
    report = M.classification_report(references, preds, labels=labels)
    correct = np.array([float(p == r) for p, r in zip(preds, references)])
    code = {lab: i for i, lab in enumerate(labels)}
    y = np.array([code.get(r, -1) for r in references])
    p = np.array([code.get(q, -1) if q is not None else -1 for q in preds])
    per = {"accuracy": correct}
    corpus: dict[str, IndexStat] = {
        "macro_f1": lambda idx: _f1_from_codes(y[idx], p[idx], len(labels), "macro"),
        "micro_f1": lambda idx: _f1_from_codes(y[idx], p[idx], len(labels), "micro"),
    }
    if ranked is not None:
        per["accuracy_ranking"] = np.array([float(a == b) for a, b in zip(ranked, references)])
    return ModelScores(per, corpus, correct, preds, {"report": report})


def _f1_from_codes(y: np.ndarray, p: np.ndarray, k: int, average: str) -> float:
    """Same numbers as sklearn's f1_score(labels=all, zero_division=0) (tests assert parity)."""
    tp = np.bincount(y[(y == p) & (y >= 0)], minlength=k)[:k].astype(float)
    pred_n = np.bincount(p[p >= 0], minlength=k)[:k].astype(float)
    true_n = np.bincount(y[y >= 0], minlength=k)[:k].astype(float)
    if average == "micro":
        tp_s, pp, tt = tp.sum(), pred_n.sum(), true_n.sum()
        prec = tp_s / pp if pp else 0.0
        rec = tp_s / tt if tt else 0.0
        return float(2 * prec * rec / (prec + rec)) if prec + rec else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(pred_n > 0, tp / np.maximum(pred_n, 1), 0.0)
        rec = np.where(true_n > 0, tp / np.maximum(true_n, 1), 0.0)
        f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0.0)
    return float(f1.mean())


def score_generation(references: Sequence[str], outputs: Sequence[str]) -> ModelScores:
    """ROUGE-1/2/L per example (rouge-score); corpus BLEU and chrF from sacrebleu's statistics."""
    from sacrebleu.metrics import BLEU, CHRF

    rouge = M.rouge_scores(outputs, references)
    per = {
        **rouge,
        "exact_match": M.exact_match_scores([o.strip() for o in outputs], [r.strip() for r in references]),
        "normalized_match": M.normalized_match_scores(outputs, references, first_line_only=False),
    }
    corpus: dict[str, IndexStat] = {}
    for name, metric in (("bleu", BLEU()), ("chrf", CHRF())):
        stats = np.array(metric._extract_corpus_statistics(list(outputs), [list(references)]))
        corpus[name] = _corpus_stat(metric, stats)
    return ModelScores(per, corpus, rouge["rougeL"], list(outputs))


def _corpus_stat(metric: Any, stats: np.ndarray) -> IndexStat:
    """A corpus metric (BLEU, chrF) recomputed from the summed sufficient statistics of the rows in ``idx``."""
    return lambda idx: float(metric._compute_score_from_stats(stats[idx].sum(0).tolist()).score)


def score_extraction(references: Sequence[str], outputs: Sequence[str]) -> ModelScores:
    """Field-level P/R/F1 over ``(field, normalised value)`` pairs of JSON answers."""
    parsed = [_parse_fields(o) for o in outputs]
    valid = np.array([float(s is not None) for s in parsed])
    out_sets: list[set] = [s if s is not None else set() for s in parsed]
    ref_sets: list[set] = [s if s is not None else set() for s in (_parse_fields(r) for r in references)]
    counts = np.array([(len(r & o), len(o - r), len(r - o)) for r, o in zip(ref_sets, out_sets)], dtype=float)
    # Nothing to find and nothing found is right only for a JSON answer: prose is not "no entities".
    example_f1 = np.array([M._prf(*c)[2] if c.sum() else v for c, v in zip(counts, valid)])

    def stat(which: int) -> IndexStat:
        return lambda idx: float(M._prf(*counts[idx].sum(0))[which])

    per = {"exact_match": np.array([float(r == o) * v for r, o, v in zip(ref_sets, out_sets, valid)]), "json_valid": valid}
    corpus = {"field_precision": stat(0), "field_recall": stat(1), "field_f1": stat(2)}
    report = M.entity_prf(ref_sets, out_sets)
    return ModelScores(per, corpus, example_f1, list(outputs), {"report": report})


def _parse_fields(text: str) -> set | None:
    data = M.answer_object(text)
    return M.field_pairs(data) if data is not None else None


def add_perplexity(scores: ModelScores, logp: np.ndarray, counts: np.ndarray) -> None:
    """Reference perplexity under the model (token-weighted), as a corpus statistic."""
    nll = -np.asarray(logp, dtype=float)
    n = np.asarray(counts, dtype=float)
    scores.corpus["perplexity"] = lambda idx: float(np.exp(nll[idx].sum() / n[idx].sum()))
    scores.details["reference_nll_per_token"] = (nll / n).tolist()
