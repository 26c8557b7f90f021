"""Metric parity with the reference libraries on real data, and bootstrap sanity."""

from __future__ import annotations

import csv
import json
import random

import numpy as np
import pytest

from tunerail import stats as S
from tunerail import metrics as M
from tunerail.scoring import _f1_from_codes, score_classification, score_extraction, score_generation


@pytest.fixture
def banking_labels(banking_example):
    with banking_example.open(newline="", encoding="utf-8") as handle:
        return [row["category"] for row in csv.DictReader(handle)]


def _noisy(labels, rate, seed):
    rng = random.Random(seed)
    classes = sorted(set(labels))
    return [rng.choice(classes) if rng.random() < rate else lab for lab in labels]


def test_classification_parity_with_sklearn(banking_labels):
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    y = banking_labels
    pred = _noisy(y, 0.3, seed=1)
    pred[5] = None  # an answer that matched no label
    labels = sorted(set(y))
    rep = M.classification_report(y, pred, labels=labels)
    sk_pred = [p if p is not None else "(no label)" for p in pred]
    assert rep["accuracy"] == pytest.approx(accuracy_score(y, sk_pred))
    assert rep["macro_f1"] == pytest.approx(f1_score(y, sk_pred, labels=labels, average="macro", zero_division=0))
    assert rep["micro_f1"] == pytest.approx(f1_score(y, sk_pred, labels=labels, average="micro", zero_division=0))
    p, r, f, s = precision_recall_fscore_support(y, sk_pred, labels=labels, zero_division=0)
    assert [c["recall"] for c in rep["per_class"]] == pytest.approx(list(r))
    assert sum(c["support"] for c in rep["per_class"]) == len(y)
    assert rep["unmatched"] == 1 and rep["confusion_labels"][-1] == "(no label)"
    assert np.array(rep["confusion"]).sum() == len(y)
    assert np.trace(np.array(rep["confusion"])) == sum(a == b for a, b in zip(y, pred))
    cm = confusion_matrix(y, sk_pred, labels=rep["confusion_labels"])
    assert rep["confusion"] == cm.tolist()


def test_fast_f1_matches_sklearn_on_resamples(banking_labels):
    """The bootstrap uses a numpy macro-F1 from confusion counts; it must equal sklearn's."""
    from sklearn.metrics import f1_score

    y = banking_labels
    pred = _noisy(y, 0.4, seed=2)
    labels = sorted(set(y))
    code = {lab: i for i, lab in enumerate(labels)}
    yc, pc = np.array([code[v] for v in y]), np.array([code[v] for v in pred])
    rng = np.random.default_rng(0)
    for _ in range(5):
        idx = rng.integers(0, len(y), size=300)
        for avg in ("macro", "micro"):
            expected = f1_score([y[i] for i in idx], [pred[i] for i in idx], labels=labels, average=avg, zero_division=0)
            assert _f1_from_codes(yc[idx], pc[idx], len(labels), avg) == pytest.approx(expected)


def test_classification_first_line_normalised_match():
    labels = ["card_arrival", "Refund_not_showing_up", "reverted_card_payment?"]
    outputs = ["Card Arrival\nThe customer asks about...", "refund not showing up.", "reverted card payment", "I think it is card_arrival"]
    scores = score_classification(["card_arrival", "Refund_not_showing_up", "reverted_card_payment?", "card_arrival"], outputs, labels)
    assert scores.predictions == ["card_arrival", "Refund_not_showing_up", "reverted_card_payment?", None]
    assert scores.per_example["accuracy"].tolist() == [1, 1, 1, 0]


@pytest.fixture
def dialogsum(shared_data):
    rows = [json.loads(line) for line in (shared_data / "summarization/dialogsum/test.jsonl").open(encoding="utf-8")][:120]
    refs = [r["summary1"] for r in rows]
    hyps = [r["summary2"] for r in rows]  # a second human reference: a realistic system
    shifted = refs[1:] + refs[:1]  # unrelated summaries: a broken system
    return refs, hyps, shifted


def test_generation_parity_with_rouge_and_sacrebleu(dialogsum):
    import sacrebleu
    from rouge_score import rouge_scorer

    refs, hyps, shifted = dialogsum
    scores = score_generation(refs, hyps)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    for i in (0, 7, 99):
        expected = scorer.score(refs[i], hyps[i])
        for key in ("rouge1", "rouge2", "rougeL"):
            assert scores.per_example[key][i] == pytest.approx(expected[key].fmeasure)
    full = np.arange(len(refs))
    assert scores.corpus["bleu"](full) == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert scores.corpus["chrf"](full) == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
    sub = np.array([3, 3, 10, 50, 51])  # resamples repeat rows: sufficient statistics must handle it
    assert scores.corpus["bleu"](sub) == pytest.approx(sacrebleu.corpus_bleu([hyps[i] for i in sub], [[refs[i] for i in sub]]).score)
    assert M.corpus_bleu(hyps, refs) == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    broken = score_generation(refs, shifted)
    assert broken.per_example["rougeL"].mean() < scores.per_example["rougeL"].mean() - 0.1
    assert broken.corpus["bleu"](full) < scores.corpus["bleu"](full)


def test_paired_bootstrap_detects_real_difference(dialogsum):
    refs, hyps, shifted = dialogsum
    good = score_generation(refs, hyps)
    bad = score_generation(refs, shifted)
    imp = S.paired_bootstrap(good.per_example["rougeL"], bad.per_example["rougeL"], resamples=500)
    assert imp.low > 0 and imp.extra["p_value"] < 0.01
    same = S.paired_bootstrap(good.per_example["rougeL"], good.per_example["rougeL"], resamples=500)
    assert same.value == 0 and same.low == 0 and same.extra["p_value"] == 1.0
    bleu = S.paired_statistic(good.corpus["bleu"], bad.corpus["bleu"], len(refs), resamples=200)
    assert bleu.low > 0


def test_bootstrap_ci_sanity():
    rng = np.random.default_rng(5)
    x = (rng.random(400) < 0.7).astype(float)
    est = S.bootstrap_ci(x, resamples=2000, seed=1)
    assert est.low < x.mean() < est.high
    half = (est.high - est.low) / 2
    analytic = 1.96 * np.sqrt(x.mean() * (1 - x.mean()) / x.size)  # normal approximation
    assert half == pytest.approx(analytic, rel=0.15)
    assert S.bootstrap_ci(x, resamples=2000, seed=1).to_dict() == est.to_dict()  # seeded: reproducible
    small = S.bootstrap_ci(x[:50], resamples=2000, seed=1)
    assert small.high - small.low > est.high - est.low  # fewer rows, wider interval
    # coverage: over 200 simulated test sets of 100 rows the 95 % CI holds p most of the time
    hits = 0
    for s in range(200):
        sample = (np.random.default_rng(100 + s).random(100) < 0.6).astype(float)
        e = S.bootstrap_ci(sample, resamples=400, seed=s)
        hits += e.low <= 0.6 <= e.high
    assert 0.88 <= hits / 200 <= 0.99


def test_mcnemar_matches_exact_binomial():
    from scipy.stats import binomtest

    tuned = np.array([1] * 30 + [0] * 5 + [1] * 40 + [0] * 25, dtype=bool)
    base = np.array([0] * 30 + [1] * 5 + [1] * 40 + [0] * 25, dtype=bool)
    res = S.mcnemar(tuned, base)
    assert res["tuned_only_correct"] == 30 and res["base_only_correct"] == 5
    assert res["p_value"] == pytest.approx(binomtest(30, 35, 0.5).pvalue)


def _read_conll(path, limit=400):
    sents, cur = [], []
    for line in path.open(encoding="utf-8"):
        parts = line.rstrip("\n").split("\t")
        if len(parts) == 2:
            cur.append(parts[1])
        elif cur:
            sents.append(cur)
            cur = []
        if len(sents) >= limit:
            break
    return sents


def test_entity_prf_on_wnut17_with_planted_errors(shared_data):
    gold = _read_conll(shared_data / "ner/wnut17/test.annotated")
    gold_spans = [M.bio_spans(t) for t in gold]
    n_entities = sum(len(s) for s in gold_spans)
    assert n_entities == sum(t.startswith("B-") for s in gold for t in s)  # well-formed BIO: one span per B-
    perfect = M.entity_prf(gold_spans, gold_spans)
    assert perfect["f1"] == 1.0 and perfect["tp"] == n_entities
    # plant: relabel the first entity of every sentence that has one -> each is one FP and one FN
    pred, planted = [], 0
    for tags in gold:
        tags = list(tags)
        for i, t in enumerate(tags):
            if t.startswith("B-"):
                new = "location" if not t.endswith("location") else "person"
                tags[i] = "B-" + new
                j = i + 1
                while j < len(tags) and tags[j].startswith("I-"):
                    tags[j] = "I-" + new
                    j += 1
                planted += 1
                break
        pred.append(M.bio_spans(tags))
    res = M.entity_prf(gold_spans, pred)
    assert (res["tp"], res["fp"], res["fn"]) == (n_entities - planted, planted, planted)
    assert res["precision"] == pytest.approx((n_entities - planted) / n_entities)


def test_bio_spans_conlleval_rules():
    assert M.bio_spans(["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-PER"]) == {
        ("PER", 0, 2),
        ("LOC", 3, 5),
        ("LOC", 5, 6),
        ("PER", 6, 7),
    }


def test_extraction_field_level():
    refs = ['{"name": "Ana", "city": "Lyon"}', '{"name": "Bo", "city": ["Oslo", "Rome"]}']
    outs = ['Here: {"name": "ana", "city": "Paris"}', "not json"]
    s = score_extraction(refs, outs)
    full = np.arange(2)
    assert s.corpus["field_precision"](full) == pytest.approx(1 / 2)
    assert s.corpus["field_recall"](full) == pytest.approx(1 / 5)
    assert s.per_example["json_valid"].tolist() == [1.0, 0.0]


def test_prose_is_not_an_exact_match_for_an_answer_with_no_entities():
    """The demo's base model scored exact_match 0.18 with no valid JSON: prose 'matched' every empty reference."""
    refs = ['{"person": [], "location": []}'] * 3
    outs = ["I'm sorry, I can't tell who is in this post.", '{"person": [], "location": []}', '{"person": ["Ana"]}']
    s = score_extraction(refs, outs)
    assert s.per_example["exact_match"].tolist() == [0.0, 1.0, 0.0]
    assert s.primary.tolist() == [0.0, 1.0, 0.0]


def test_perplexity():
    assert M.perplexity([2.0, 4.0], [2, 4]) == pytest.approx(np.exp(1.0))
