"""Span-extraction alternatives: a CRF (sklearn-crfsuite) and spaCy's NER, trained on your rows.

Both learn BIO tags from the training answers' values found in their prompts
(:mod:`tunerail.eval.alternatives.spans`) and rebuild the answer JSON from the spans they predict.
On the WNUT-17 demo's split (734 fit rows, 258 test rows; issue 21) a spaCy NER fine-tuned from
``en_core_web_sm`` scored field F1 0.603 and a CRF 0.507, where the tuned SmolLM2 scored 0.485.

Costs (2 CPU cores, WNUT-17 demo): see ``bench/results/baselines.md``. spaCy is the slow one: it
trains on the training rows with early stopping on the validation rows' field F1 and stops within
the time the other alternatives left of the eval's budget for them (``budget.py``: 10 % of the eval
step less a headroom, 28 CPU s on the demo), keeping its best epoch and recording the epochs run and why it stopped.
"""

from __future__ import annotations

import random
import time
from functools import partial
from typing import Any, Sequence

from tunerail.eval.alternatives.base import Alternative, FitData
from tunerail.eval.alternatives.spans import SpanSchema, tokenize

CRF_ITERATIONS = 100  # L-BFGS iterations; the field F1 on WNUT-17 is flat after ~60
CRF_C1, CRF_C2 = 0.1, 0.1  # L1/L2 penalties (sklearn-crfsuite's tutorial values)
SPACY_EPOCHS = 10  # most passes over the rows; more buys little on ~700 rows and costs ~3 s each
SPACY_PATIENCE = 3  # epochs without a better validation field F1 (once above 0); 2 stopped WNUT-17 at epoch 3 (test F1 0.37), 3 at 7 (0.45)
SPACY_DROPOUT = 0.2
SPACY_BATCH_START = 4  # rows per update at first, compounding to SPACY_BATCH (spaCy's own schedule): small batches learn fast,
SPACY_BATCH = 32  # large ones settle; on WNUT-17 under load a fixed 4 peaked after one epoch and a fixed 32 found nothing in two
SPACY_PRETRAINED = ("en_core_web_sm", "en_core_web_md", "en_core_web_lg")  # first installed one is the start


# --- CRF -----------------------------------------------------------------------------------------
def _shape(word: str) -> str:
    """``Xxxx``-style word shape with runs collapsed (``McDonald`` -> ``XxXx``)."""
    out: list[str] = []
    for ch in word:
        c = "X" if ch.isupper() else "x" if ch.islower() else "d" if ch.isdigit() else ch
        if not out or out[-1] != c:
            out.append(c)
    return "".join(out)


def word_features(words: Sequence[str], i: int) -> dict[str, Any]:
    """Features of word ``i``: itself (lowercased, shape, affixes, case) and the words within +-2."""
    w = words[i]
    f: dict[str, Any] = {
        "bias": 1.0,
        "lower": w.lower(),
        "shape": _shape(w),
        "pre2": w[:2],
        "pre3": w[:3],
        "suf2": w[-2:],
        "suf3": w[-3:],
        "title": w.istitle(),
        "upper": w.isupper(),
        "digit": w.isdigit(),
    }
    for off in (-2, -1, 1, 2):
        j = i + off
        if 0 <= j < len(words):
            f[f"{off}:lower"] = words[j].lower()
            f[f"{off}:title"] = words[j].istitle()
            f[f"{off}:shape"] = _shape(words[j])
        else:
            f[f"{off}:edge"] = True
    return f


def fit_crf(data: FitData) -> tuple[list[str], dict[str, Any]]:
    """A linear-chain CRF over word, shape, affix and +-2 context features."""
    import sklearn_crfsuite

    schema = SpanSchema.from_answers(data.fit_answers)
    x, y = [], []
    for prompt, answer in zip(data.fit_prompts, data.fit_answers):
        tokens, tags = schema.tags(prompt, answer)
        words = [t[0] for t in tokens]
        x.append([word_features(words, i) for i in range(len(words))])
        y.append(tags)
    crf = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=CRF_C1, c2=CRF_C2, max_iterations=CRF_ITERATIONS, all_possible_transitions=True)
    crf.fit(x, y)
    out = []
    for prompt in data.test_prompts:
        tokens = tokenize(prompt)
        words = [t[0] for t in tokens]
        tags = crf.predict_single([word_features(words, i) for i in range(len(words))]) if words else []
        out.append(schema.answer(prompt, tokens, tags))
    return out, {"fields": schema.fields, "fit_rows": len(x), "iterations": CRF_ITERATIONS, "c1": CRF_C1, "c2": CRF_C2}


# --- spaCy NER -----------------------------------------------------------------------------------
def spacy_start() -> str | None:
    """The first pretrained English pipeline installed (``spacy.util.is_package``), else None (blank)."""
    import spacy

    return next((name for name in SPACY_PRETRAINED if spacy.util.is_package(name)), None)


def fit_spacy_ner(data: FitData) -> tuple[list[str], dict[str, Any]]:
    """spaCy's NER trained on the rows, from a pretrained pipeline when one is installed, else blank English.

    From a pretrained pipeline only the ``ner`` component trains (the others are kept frozen), with
    the fields added as new entity labels; its existing labels are kept but never predicted here.
    It trains on the training rows and stops early on the validation rows' field F1 (``SPACY_PATIENCE``
    epochs without a better one) or when ``data.time_budget_s`` runs out, keeping its best epoch;
    ``details`` records the epochs run and why it stopped.
    """
    import spacy
    from spacy.training import Example

    started = time.process_time()  # the budget is CPU seconds (``budget.py``)
    spacy.util.fix_random_seed(data.seed)  # thinc's weight init and dropout: unseeded, two fits differed by 0.02 F1
    schema = SpanSchema.from_answers(data.fit_answers)
    start = spacy_start()
    nlp = spacy.load(start) if start else spacy.blank("en")
    ner: Any = nlp.get_pipe("ner") if "ner" in nlp.pipe_names else nlp.add_pipe("ner")
    for key in schema.fields:
        ner.add_label(key)
    train, (val_prompts, val_answers) = _validation_slice(data)
    examples = []
    for prompt, answer in train:
        doc = nlp.make_doc(prompt)
        ents = [(s, e, k) for s, e, k in schema.char_spans(prompt, answer) if doc.char_span(s, e, label=k, alignment_mode="contract")]
        examples.append(Example.from_dict(doc, {"entities": ents}))
    deadline = None if data.time_budget_s is None else started + data.time_budget_s
    with nlp.select_pipes(disable=[p for p in nlp.pipe_names if p != "ner"]):
        optimizer = nlp.resume_training() if start else nlp.initialize(lambda: examples)
        ratio = 1 + len(data.test_prompts) / max(len(val_prompts), 1)
        validate = partial(_field_f1, schema, nlp, val_prompts, val_answers)
        run = _train_spacy(nlp, ner, examples, optimizer, deadline, validate, data.seed, ratio)
        out = [schema.render((e.label_, e.text) for e in doc.ents) for doc in nlp.pipe(data.test_prompts)]
    details = {"pipeline": start or "blank:en", "pretrained": start is not None, "max_epochs": SPACY_EPOCHS, "fields": schema.fields}
    return out, {**details, **run, "fit_rows": len(examples), "validation_rows": len(val_prompts), "budget_s": data.time_budget_s}


def _validation_slice(data: FitData) -> tuple[list[tuple[str, str]], tuple[list[str], list[str]]]:
    """(training pairs, validation prompts and answers): the validation rows, else the last tenth of the training rows."""
    if data.validation_prompts:
        return list(zip(data.train_prompts, data.train_answers)), (data.validation_prompts, data.validation_answers)
    cut = len(data.train_prompts) - len(data.train_prompts) // 10
    return list(zip(data.train_prompts[:cut], data.train_answers[:cut])), (data.train_prompts[cut:], data.train_answers[cut:])


def _field_f1(schema: SpanSchema, nlp: Any, prompts: Sequence[str], answers: Sequence[str]) -> float | None:
    """The task's field F1 of the current model on the validation rows (None without any)."""
    import numpy as np

    from tunerail.tasks import score

    if not prompts:
        return None
    predicted = [schema.render((e.label_, e.text) for e in doc.ents) for doc in nlp.pipe(prompts)]
    return float(score("extraction", list(answers), predicted, []).corpus["field_f1"](np.arange(len(prompts))))


def _train_spacy(
    nlp: Any, ner: Any, examples: list[Any], optimizer: Any, deadline: float | None, validate: Any, seed: int, predict_ratio: float = 1.0
) -> dict[str, Any]:
    """Epochs of minibatch updates until ``SPACY_EPOCHS``, early stopping or ``deadline``; the best epoch's weights are restored.

    Training stops early enough to leave time for the test predictions: ``predict_ratio`` times the
    last validation's seconds (test rows / validation rows + 1 for a last validation).
    """
    import spacy

    rng = random.Random(seed)
    sizes = spacy.util.compounding(min(SPACY_BATCH_START, SPACY_BATCH), SPACY_BATCH, 1.001)  # one schedule across the epochs
    losses: dict[str, float] = {}
    best: float | None = None
    best_weights, best_epoch, since, stopped = None, 0, 0, "max_epochs"
    history: list[float | None] = []
    reserve = 0.0  # seconds kept for the predictions still to come, from the last validation's time
    while len(history) < SPACY_EPOCHS:
        rng.shuffle(examples)
        for batch in spacy.util.minibatch(examples, size=sizes):
            nlp.update(batch, drop=SPACY_DROPOUT, sgd=optimizer, losses=losses)
            if deadline is not None and time.process_time() + reserve > deadline:
                stopped = "time_budget"
                break
        t = time.process_time()
        f1 = validate()
        reserve = (time.process_time() - t) * predict_ratio
        history.append(None if f1 is None else round(f1, 4))
        if best_weights is None or (f1 is not None and best is not None and f1 > best):
            best, best_weights, best_epoch, since = f1, ner.to_bytes(), len(history), 0
        elif best:  # patience counts from the first epoch that found anything: a run of zeros is not a plateau
            since += 1
        if since >= SPACY_PATIENCE:  # checked first: a plateau reached as the budget ran out is converged, not cut
            stopped = "early_stopping"
            break
        if stopped == "time_budget":
            break
    if best_weights is not None:
        ner.from_bytes(best_weights)
    return {
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "stopped": stopped,
        "validation_f1": history,
        "final_loss": round(float(losses.get("ner", 0.0)), 3),
    }


CRF = Alternative(
    "crf",
    "CRF (word shape, affixes, +-2 context words)",
    "sklearn-crfsuite",
    "the CRF model file (under 1 MB) behind a tokenizer: milliseconds per request on a CPU",
    fit_crf,
)
SPACY_NER = Alternative(
    "spacy_ner",
    "spaCy NER trained on your rows",
    "spaCy",
    "the trained spaCy pipeline (`nlp.to_disk`, ~15 MB): milliseconds per request on a CPU",
    fit_spacy_ner,
    version=3,
    budgeted=True,
)
