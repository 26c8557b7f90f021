"""The alternatives registry on real WNUT-17 rows: span detection, CRF / spaCy NER fitted and named in the verdict."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from eval_fixtures import cached_tiny_pair, write_jsonl  # noqa: E402

from tunerail import tasks  # noqa: E402
from tunerail.config import CriteriaConfig, TunerailConfig  # noqa: E402
from tunerail.eval import alternatives as A  # noqa: E402
from tunerail.eval.alternatives import taggers  # noqa: E402
from tunerail.eval.alternatives.spans import SpanSchema  # noqa: E402
from tunerail.eval.verdict import VerdictInputs, decide  # noqa: E402
from tunerail.findings import Severity  # noqa: E402

WNUT = Path(__file__).resolve().parent.parent / "examples" / "wnut17" / "posts.jsonl"
FIT, TEST = 160, 60


def _rows() -> list[dict]:
    return [json.loads(x) for x in WNUT.read_text(encoding="utf-8").splitlines()[: FIT + TEST]]


def _data(rows: list[dict]) -> A.FitData:
    fit, test = rows[:FIT], rows[FIT:]
    return A.FitData(
        "extraction",
        [r["text"] for r in fit[:140]],
        [r["entities"] for r in fit[:140]],
        [r["text"] for r in fit[140:]],
        [r["entities"] for r in fit[140:]],
        [r["text"] for r in test],
    )


def _rewritten(answer: str) -> str:
    """The same answer with every value normalised so it no longer occurs verbatim in the post."""
    data = json.loads(answer)
    return json.dumps({k: [f"{v.upper()} (normalised)" for v in vs] for k, vs in data.items()})


def test_span_detector_picks_the_family_from_the_data():
    rows = _rows()
    prompts, answers = [r["text"] for r in rows], [r["entities"] for r in rows]
    assert A.values_are_spans(prompts, answers)
    shape, chosen = A.choose("extraction", prompts, answers)
    assert shape == "spans" and {"spacy_ner", "crf"} <= {a.name for a in chosen}
    # the same rows with values that are not copied from the post: no span tagger
    rewritten = [_rewritten(a) for a in answers]
    assert not A.values_are_spans(prompts, rewritten)
    shape, chosen = A.choose("extraction", prompts, rewritten)
    assert shape == "fields" and [a.name for a in chosen] == ["nearest_neighbour"]
    # generation: a short answer of a long prompt is summary-like, a long reply is not
    firsts = [p.split(" . ")[0][:20] for p in prompts]
    assert A.choose("generation", prompts, firsts)[0] == "summary"
    assert {"lead_sentences", "centroid_sentence"} <= {a.name for a in A.choose("generation", prompts, firsts)[1]}
    assert A.choose("chat", prompts, [p + " " + p for p in prompts])[0] == "text"
    assert [a.name for a in A.choose("classification", prompts, ["a", "b"] * 110)[1]] == ["tfidf_logreg", "minilm_logreg"]
    # the rule's threshold decides: half the values verbatim is below SPAN_SHARE
    half = [a if i % 2 else _rewritten(a) for i, a in enumerate(answers)]
    assert not A.values_are_spans(prompts, half) and A.values_are_spans(prompts, half, threshold=0.3)


def test_bio_tags_rebuild_the_answer_from_the_post():
    rows = [r for r in _rows() if json.loads(r["entities"]) != {"person": [], "location": []}]
    schema = SpanSchema.from_answers([r["entities"] for r in rows])
    assert schema.fields == ["person", "location"] and schema.list_fields == {"person", "location"}
    same = 0
    for r in rows:
        tokens, tags = schema.tags(r["text"], r["entities"])
        rebuilt = schema.answer(r["text"], tokens, tags)
        assert list(json.loads(rebuilt)) == ["person", "location"]  # the references' field order
        ok = tasks.score("extraction", [r["entities"]], [rebuilt], []).corpus["field_f1"](np.arange(1)) == 1.0
        same += ok
    assert same / len(rows) > 0.95  # a value that is not on token boundaries cannot be tagged


def _planted_verdict(fitted: list[A.Fitted], refs: list[str], tuned_outputs: list[str]):
    from tunerail.eval.compare import Draws, baseline_table, estimates

    n = len(refs)
    scored = {"tuned": tasks.score("extraction", refs, tuned_outputs, []), "base": tasks.score("extraction", refs, ["{}"] * n, [])}
    scored.update({f.name: tasks.score("extraction", refs, f.predictions, []) for f in fitted if f.error is None})
    metrics = {m: estimates(s, n, 300) for m, s in scored.items()}
    table = baseline_table(scored, metrics, "field_f1", Draws(300), fitted, [], {}, set())
    inputs = VerdictInputs(
        "field_f1",
        metrics["tuned"],
        metrics["base"],
        None,
        forgetting={"worst": 0.0, "relative_change": {}},
        criteria_state="frozen",
        baselines=[b for b in table if b.get("gain") is not None],
        baselines_failed=[b for b in table if b.get("error")],
    )
    return table, decide(CriteriaConfig(metric="field_f1", threshold=0.0, margin=1.0), inputs)


def _swapped(answer: str) -> str:
    """A deliberately worse answer: the right values under the wrong field."""
    data = json.loads(answer)
    return json.dumps({"person": data["location"], "location": data["person"]})


@pytest.mark.slow
def test_trained_ner_and_crf_beat_a_planted_weak_model_and_are_named_in_the_verdict(monkeypatch):
    """spaCy NER and the CRF trained on 160 real rows; the "tuned model" is planted: every value under the wrong field."""
    monkeypatch.setattr(taggers, "SPACY_EPOCHS", 6)
    monkeypatch.setattr(taggers, "SPACY_BATCH", 4)  # small data learns faster in small batches (~25 s on a busy 2-core box)
    rows = _rows()
    data = _data(rows)
    refs = [r["entities"] for r in rows[FIT:]]
    fitted = [A.fit_one(alt, data) for alt in (taggers.SPACY_NER, taggers.CRF)]
    assert [f.error for f in fitted] == [None, None]
    spacy_fit, crf_fit = fitted
    assert spacy_fit.details["pipeline"] in ("blank:en", *taggers.SPACY_PRETRAINED) and spacy_fit.seconds > 0
    assert all(list(json.loads(p)) == ["person", "location"] for p in crf_fit.predictions + spacy_fit.predictions)
    table, (verdict, findings) = _planted_verdict(fitted, refs, [_swapped(r) for r in refs])
    by = {b["name"]: b for b in table}
    assert by["spacy_ner"]["library"] == "spaCy" and by["crf"]["library"] == "sklearn-crfsuite"
    failed = {f.details["baseline"]: f for f in findings if f.code == "EVL050" and Severity(f.severity) == Severity.ERROR}
    assert verdict == "NOT READY" and {"spacy_ner", "crf"} <= set(failed)
    for name, lib in (("spacy_ner", "spaCy"), ("crf", "sklearn-crfsuite")):
        assert f"({name}, {lib})" in failed[name].message and failed[name].details["low"] < 0  # beaten by its CI
        assert "trained on your data scores" in failed[name].fix and "ship it" in failed[name].fix
        assert "fix the fine-tune" in failed[name].fix
    # the same alternatives against the references themselves (a perfect model): beaten, READY
    _, (verdict, findings) = _planted_verdict(fitted, refs, refs)
    assert verdict == "READY" and all(f.details.get("passed") for f in findings if f.code == "EVL050")


def _broken(data: A.FitData):
    raise RuntimeError("no pretrained pipeline could be loaded")


BROKEN = A.Alternative("broken_ner", "a tagger that cannot load", "spaCy", "n/a", _broken)


def test_an_alternative_that_errors_is_reported_and_gets_a_finding(tmp_path):
    rows = _rows()
    data = _data(rows)
    refs = [r["entities"] for r in rows[FIT:]]
    fitted = A.fit_alternatives(data, [BROKEN, A.ALL["lead_sentences"]], tmp_path / "cache")
    assert [(f.name, f.error) for f in fitted] == [
        ("broken_ner", "RuntimeError: no pretrained pipeline could be loaded"),
        ("lead_sentences", None),
    ]
    again = A.fit_alternatives(data, [BROKEN, A.ALL["lead_sentences"]], tmp_path / "cache")
    assert again[0].error and not again[0].details.get("cached") and again[1].details["cached"]  # errors are never cached
    table, (verdict, findings) = _planted_verdict(fitted, refs, refs)
    row = next(b for b in table if b["name"] == "broken_ner")
    assert row["estimate"] is None and row["gain"] is None and "RuntimeError" in row["error"]
    warn = [f for f in findings if f.code == "EVL052"]
    assert len(warn) == 1 and Severity(warn[0].severity) == Severity.WARNING and warn[0].details["baseline"] == "broken_ner"
    assert "a tagger that cannot load (broken_ner, spaCy)" in warn[0].message and "no pretrained pipeline" in warn[0].message


@pytest.mark.slow
def test_eval_fits_span_alternatives_and_reports_them_side_by_side(tmp_path, monkeypatch):
    """End to end with the tiny random LLM: spaCy, CRF and a failing alternative in report.json and report.html."""
    import tunerail

    monkeypatch.setattr(taggers, "SPACY_EPOCHS", 2)
    monkeypatch.setitem(A.FAMILIES, "spans", (taggers.SPACY_NER, taggers.CRF, BROKEN))
    model, adapter = cached_tiny_pair()
    rows = _rows()
    cfg = TunerailConfig.model_validate(
        {
            "task": "extraction",
            "data": {"format": "prompt_completion", "columns": {"prompt": "text", "completion": "entities"}},
            "prompts": [{"version": "v1", "system": "Extract people and locations as JSON."}],
            "criteria": {"metric": "field_f1", "threshold": 0.0, "margin": 1.0},
            "eval": {"forgetting": False, "bootstrap": 200, "max_new_tokens": 8, "perplexity": False},
        }
    )
    res = tunerail.evaluate(
        cfg,
        test_data=write_jsonl(tmp_path / "test.jsonl", rows[FIT : FIT + 30]),
        train_data=write_jsonl(tmp_path / "train.jsonl", rows[:100]),
        validation_data=write_jsonl(tmp_path / "val.jsonl", rows[100:120]),
        adapter_dir=adapter,
        base_model=str(model),
        out_dir=tmp_path / "out",
        cache_dir=None,
    )
    by = {b["name"]: b for b in res.baselines}
    assert by["crf"]["library"] == "sklearn-crfsuite" and by["spacy_ner"]["library"] == "spaCy" and by["crf"]["gain"] is not None
    assert by["broken_ner"]["error"] and res.alternatives["shape"] == "spans"
    assert res.alternatives["failed"][0]["name"] == "broken_ner" and res.alternatives["fit_seconds"] > 0
    codes = {f.code for f in res.findings}
    assert "EVL052" in codes and res.verdict == "NOT READY"  # the random tiny model beats no trained tagger
    report = json.loads(Path(res.report_json).read_text(encoding="utf-8"))
    assert {"crf", "spacy_ner", "broken_ner"} <= {b["name"] for b in report["baselines"]}
    html = Path(res.report_html).read_text(encoding="utf-8")
    assert "sklearn-crfsuite" in html and "failed: RuntimeError" in html and "answers shaped as <b>spans</b>" in html


def test_minilm_token_classifier_is_opt_in_and_names_are_checked():
    from tunerail.errors import TunerailError

    rows = _rows()
    prompts, answers = [r["text"] for r in rows], [r["entities"] for r in rows]
    assert "minilm_tokens" not in {a.name for a in A.choose("extraction", prompts, answers)[1]}
    assert "minilm_tokens" in {a.name for a in A.choose("extraction", prompts, answers, ["minilm_tokens"])[1]}
    rewritten = [_rewritten(a) for a in answers]
    assert "minilm_tokens" not in {a.name for a in A.choose("extraction", prompts, rewritten, ["minilm_tokens"])[1]}  # not spans
    with pytest.raises(TunerailError) as err:
        A.choose("extraction", prompts, answers, ["minilm_token"])
    assert err.value.problems[0].field == "eval.alternatives" and "minilm_tokens" in err.value.problems[0].fix


def test_lead_sentences_copy_the_start_of_the_input_up_to_the_answers_length():
    from tunerail.eval.alternatives.neighbours import LEAD_SENTENCES

    turns = [f"#Person{1 + i % 2}#: line number {i} of the talk." for i in range(12)]
    dialogue = "\n".join(turns)
    data = A.FitData("generation", ["x"] * 3, ["a" * 60] * 3, [], [], [dialogue, "One sentence only"])
    fitted = A.fit_one(LEAD_SENTENCES, data)
    assert fitted.error is None and fitted.predictions[1] == "One sentence only"
    assert fitted.predictions[0] == " ".join(turns[:2])  # two turns reach the 60-character median answer
    assert fitted.details["target_chars"] == 60


@pytest.mark.slow
def test_minilm_token_classifier_returns_answers_in_the_reference_format(monkeypatch):
    from tunerail.eval.alternatives import token_classifier as TC

    monkeypatch.setattr(TC, "EPOCHS", 1)
    rows = _rows()
    data = A.FitData(
        "extraction", [r["text"] for r in rows[:64]], [r["entities"] for r in rows[:64]], [], [], [r["text"] for r in rows[FIT:]]
    )
    fitted = A.fit_one(TC.MINILM_TOKENS, data)
    assert fitted.error is None and len(fitted.predictions) == TEST
    assert all(list(json.loads(p)) == ["person", "location"] for p in fitted.predictions)
    assert fitted.details["fit_rows"] == 64 and fitted.details["epochs"] == 1
