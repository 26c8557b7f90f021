"""Cheap baselines, base-model variants, few-shot and label-constrained decoding (tiny random Llama, real rows)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from eval_fixtures import cached_tiny_pair, write_jsonl  # noqa: E402

from tunerail import stats as S  # noqa: E402
from tunerail.config import CriteriaConfig, TunerailConfig  # noqa: E402
from tunerail.eval.verdict import VerdictInputs, decide  # noqa: E402
from tunerail.findings import Severity  # noqa: E402

BANKING = Path(__file__).resolve().parent.parent / "examples" / "banking77" / "train.csv"


@pytest.fixture(scope="module")
def tiny():
    return cached_tiny_pair()


@pytest.fixture(scope="module")
def banking_splits(tmp_path_factory):
    """Disjoint train / validation / test rows over all 20 intents (per-intent round robin)."""
    with BANKING.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_label: dict[str, list[dict]] = {}
    for r in rows:
        by_label.setdefault(r["category"], []).append(r)
    train, val, test = [], [], []
    for items in by_label.values():
        train += items[:20]
        val += items[20:25]
        test += items[25:26]
    out = tmp_path_factory.mktemp("banking")
    return (write_jsonl(out / "train.jsonl", train), write_jsonl(out / "validation.jsonl", val), write_jsonl(out / "test.jsonl", test))


def _config(**eval_kw) -> TunerailConfig:
    return TunerailConfig.model_validate(
        {
            "task": "classification",
            "data": {"format": "text_label", "columns": {"label": "category"}},
            "prompts": [{"version": "v1", "system": "Answer with the intent label only."}],
            "criteria": {"metric": "accuracy", "threshold": 0.0, "margin": 0.5},
            "eval": {"forgetting": False, "bootstrap": 200, **eval_kw},
        }
    )


def test_cheap_baseline_that_beats_the_tuned_model_gives_not_ready(tiny, banking_splits, tmp_path):
    import tunerail

    model, adapter = tiny
    train, val, test = banking_splits
    cache = tmp_path / "cache"
    res = tunerail.evaluate(
        _config(few_shot=2),
        test_data=test,
        adapter_dir=adapter,
        base_model=str(model),
        out_dir=tmp_path / "out",
        train_data=train,
        validation_data=val,
        cache_dir=cache,
    )
    names = [b["name"] for b in res.baselines]
    assert {"tfidf_logreg", "minilm_logreg", "base", "base_ranked", "base_few_shot_ranked", "tuned_free"} <= set(names)
    tfidf = next(b for b in res.baselines if b["name"] == "tfidf_logreg")
    assert tfidf["estimate"]["value"] > 0.5  # 20 intents: chance is 0.05; the random tiny LLM is near it
    assert tfidf["details"]["fit_rows"] == 500 and tfidf["details"]["C"] > 0
    # threshold 0.0 passes; what blocks is the baselines the random fine-tune does not beat
    errors = [f for f in res.findings if Severity(f.severity) == Severity.ERROR]
    assert res.verdict == "NOT READY" and {f.code for f in errors} == {"EVL050"}
    failed = {f.details["baseline"]: f for f in errors}
    assert {"tfidf_logreg", "minilm_logreg"} <= set(failed)
    msg = failed["tfidf_logreg"].message
    assert "TF-IDF (1-2-grams) + logistic regression (tfidf_logreg, scikit-learn)" in msg and msg.count("95 % CI") == 3
    assert "ship the cheap model" in failed["tfidf_logreg"].fix and "fix the fine-tune" in failed["tfidf_logreg"].fix
    assert res.reference in {"tfidf_logreg", "minilm_logreg"}  # criteria.baseline: strongest

    report = json.loads(Path(res.report_json).read_text(encoding="utf-8"))
    assert [b["name"] for b in report["baselines"]] == names and report["reference"] == res.reference
    assert report["criteria"]["decision"] == "ci" and report["criteria"]["rule"] == "95 % CI lower bound"
    html = Path(res.report_html).read_text(encoding="utf-8")
    assert "Baselines side by side" in html and "MiniLM embeddings + logistic regression" in html

    # few-shot took effect and is recorded
    assert res.prompt["few_shot"] == 2 and res.prompt["few_shot_hash"]
    assert "base_few_shot_ranked" in res.metrics
    # the verdict model answered by constrained decoding: nothing outside the label set
    assert res.prompt["decoding"] == "both" and res.classification["tuned"]["unmatched"] == 0

    again = tunerail.evaluate(
        _config(few_shot=2),
        test_data=test,
        adapter_dir=adapter,
        base_model=str(model),
        out_dir=tmp_path / "out2",
        train_data=train,
        validation_data=val,
        cache_dir=cache,
    )
    cached = next(b for b in again.baselines if b["name"] == "tfidf_logreg")
    assert cached["details"]["cached"] and cached["estimate"] == tfidf["estimate"]

    base_only = tunerail.evaluate(
        _config(few_shot=2, baselines=False),
        test_data=test,
        adapter_dir=adapter,
        base_model=str(model),
        out_dir=tmp_path / "out3",
        train_data=train,
        validation_data=val,
        cache_dir=cache,
    )
    assert "tfidf_logreg" not in base_only.metrics and any(f.code == "EVL051" for f in base_only.findings)


def test_few_shot_changes_the_rendered_prompt(banking_splits):
    from tunerail.eval.inputs import load_rows as _load
    from tunerail.tasks import pick_shots
    from tunerail.models import load_tokenizer
    from tunerail.prompting import prompt_for, prompt_hash

    train, _, test = banking_splits
    cfg = _config(few_shot=3)
    shots = pick_shots(_load(cfg, train)[0], cfg.eval.few_shot)
    tok = load_tokenizer("bundled:smollm2")
    row = json.loads(test.read_text(encoding="utf-8").splitlines()[0])["text"]
    zero, few = prompt_for(tok, row, cfg.prompts[0]), prompt_for(tok, row, cfg.prompts[0], shots)
    assert zero != few and all(q in few and a in few for q, a in shots) and few.endswith(zero[zero.index(row) :])
    assert prompt_hash(cfg.prompts[0], shots) != prompt_hash(cfg.prompts[0])


def test_constrained_decoding_never_answers_outside_the_label_set(tiny, banking_splits):
    from tunerail.eval.generate import generate, generate_constrained, load_model
    from tunerail.prompting import prompt_for

    model, _ = tiny
    _, _, test = banking_splits
    rows = [json.loads(x) for x in test.read_text(encoding="utf-8").splitlines()]
    labels = sorted({r["category"] for r in rows}) + ["card", "card arrival"]  # labels that prefix others
    lm = load_model(str(model))
    prompts = [prompt_for(lm.tokenizer, r["text"], {"system": "Intent label?"}) for r in rows]
    constrained = generate_constrained(lm, prompts, labels, batch_size=8)
    assert len(constrained) == len(rows) and set(constrained) <= set(labels)
    free = generate(lm, prompts, max_new_tokens=8, batch_size=8)
    assert sum(f in labels for f in free) < len(rows)  # the random model's free answers miss the labels


def test_cheap_baseline_findings_decided_by_ci():
    rng = np.random.default_rng(0)
    n = 300
    tuned = (rng.random(n) < 0.80).astype(float)
    cheap = (rng.random(n) < 0.90).astype(float)
    weak = (rng.random(n) < 0.30).astype(float)

    def row(name, kind, arr):
        return {
            "name": name,
            "label": name,
            "kind": kind,
            "estimate": S.bootstrap_ci(arr, resamples=500).to_dict(),
            "gain": S.paired_bootstrap(tuned, arr, resamples=500).to_dict(),
        }

    inputs = VerdictInputs(
        "accuracy",
        {"accuracy": S.bootstrap_ci(tuned, resamples=500).to_dict()},
        {},
        None,
        forgetting={"worst": 0.0, "relative_change": {}},
        criteria_state="frozen",
        baselines=[row("tfidf_logreg", "cheap", cheap), row("base", "llm", weak)],
    )
    verdict, findings = decide(CriteriaConfig(metric="accuracy", threshold=0.5, margin=0.5), inputs)
    by = {f.details["baseline"]: f for f in findings if f.code == "EVL050"}
    assert verdict == "NOT READY"
    assert Severity(by["tfidf_logreg"].severity) == Severity.ERROR and Severity(by["base"].severity) == Severity.INFO
