"""The base model k-shot as the registered alternative for fields / summary / text, the local alternatives'
time budget (budgeted fits last, EVL053 when over) and spaCy NER's early stopping within it, on real WNUT-17 rows."""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from eval_fixtures import cached_tiny_pair, write_jsonl  # noqa: E402
from test_alternatives import FIT, _data, _rewritten, _rows  # noqa: E402

from tunerail import tasks  # noqa: E402
from tunerail.config import TunerailConfig  # noqa: E402
from tunerail.data.records import Record, RowRef  # noqa: E402
from tunerail.eval import alternatives as A  # noqa: E402
from tunerail.eval.alternatives import taggers  # noqa: E402
from tunerail.findings import Severity  # noqa: E402


def _config(task: str = "extraction", **ev) -> TunerailConfig:
    return TunerailConfig.model_validate(
        {
            "task": task,
            "data": {"format": "prompt_completion", "columns": {"prompt": "text", "completion": "entities"}},
            "prompts": [{"version": "v1", "system": "Extract people and locations as JSON."}],
            "criteria": {"metric": "field_f1" if task == "extraction" else "rougeL", "threshold": 0.0, "margin": 1.0},
            "eval": {"forgetting": False, "bootstrap": 200, "max_new_tokens": 8, "perplexity": False, **ev},
        }
    )


def _records(rows: list[dict], rewrite: bool = False) -> list[Record]:
    return [
        Record(
            ref=RowRef(i, i + 1),
            format="prompt_completion",
            turns=None,
            prompt=r["text"],
            completion=_rewritten(r["entities"]) if rewrite else r["entities"],
        )
        for i, r in enumerate(rows)
    ]


def test_the_registry_gives_the_base_model_k_shot_where_it_is_the_alternative():
    rows = _rows()
    spans, fields = _records(rows[:FIT]), _records(rows[:FIT], rewrite=True)
    test = _records(rows[FIT:])
    off = _config(baselines=False)  # the shape is still read; nothing is fitted

    run = A.for_eval(off, "extraction", test, fields, [], None, fields)
    assert run.shape == "fields" and run.llm_rows == ["base_few_shot"] and run.shots == tasks.pick_shots(fields, A.BASE_K_SHOT["fields"])
    assert len(run.shots) == 3 and run.skipped and run.fitted == []
    run = A.for_eval(off, "extraction", test, spans, [], None, spans)  # span taggers instead of an LLM k-shot
    assert run.shape == "spans" and run.shots == [] and run.llm_rows == []
    explicit = A.for_eval(_config(baselines=False, few_shot=2), "extraction", test, spans, [], None, spans)
    assert len(explicit.shots) == 2 and explicit.llm_rows == []  # asked for: computed, but not the registry's alternative
    assert A.for_eval(_config(baselines=False, few_shot=0), "extraction", test, fields, [], None, fields).shots == []  # 0: off
    summary = [
        Record(ref=RowRef(i, i + 1), format="prompt_completion", turns=None, prompt=r.prompt * 4, completion=r.prompt[:30])
        for i, r in enumerate(spans)
    ]
    assert A.for_eval(_config("generation", baselines=False), "generation", test, summary, [], None, summary).llm_rows == ["base_few_shot"]


def test_eval_computes_the_registered_k_shot_row_once_as_the_base_model_row(tmp_path):
    """Extraction whose values are not spans: the 3-shot base model is one row of the table, listed as the registry's."""
    import tunerail

    model, adapter = cached_tiny_pair()
    rows = _rows()
    rewritten = [{**r, "entities": _rewritten(r["entities"])} for r in rows]
    res = tunerail.evaluate(
        _config(baselines=False),
        test_data=write_jsonl(tmp_path / "test.jsonl", rewritten[FIT : FIT + 12]),
        train_data=write_jsonl(tmp_path / "train.jsonl", rewritten[:40]),
        adapter_dir=adapter,
        base_model=str(model),
        out_dir=tmp_path / "out",
        cache_dir=None,
    )
    few = [b for b in res.baselines if b["name"].startswith("base_few_shot")]
    assert [b["name"] for b in few] == ["base_few_shot"] and few[0]["label"] == "base model, 3-shot free generation"
    assert few[0]["gain"] is not None and res.alternatives["llm_rows"] == ["base_few_shot"] and res.alternatives["shape"] == "fields"
    assert res.prompt["few_shot"] == 3 and res.prompt["few_shot_requested"] is None


def test_slow_local_alternatives_get_a_finding_naming_them_and_their_seconds():
    def fitted(name: str, seconds: float, kind: str = "cheap") -> A.Fitted:
        return A.Fitted(name, name, "lib", ["x"], seconds, kind=kind)

    ran = [fitted("crf", 5.0), fitted("spacy_ner", 40.0), fitted("hosted:gptx", 120.0, "hosted"), fitted("nearest_neighbour", 0.0)]
    [warn] = A.slow_findings(ran, 313.0)
    assert warn.code == "EVL053" and Severity(warn.severity) == Severity.WARNING
    assert "took 45.0 s, 14% of the eval step's 313.0 s (budget 10%): spacy_ner 40.0 s, crf 5.0 s" in warn.message
    assert "hosted" not in warn.message and warn.details["alternative"] == "spacy_ner" and warn.details["seconds"] == 40.0
    assert A.slow_findings(ran[:1] + ran[2:], 313.0) == []  # 5 s of 313 s: within the budget (hosted time does not count)
    assert A.local_budget(258) == pytest.approx(0.1 * 0.9 * 313, abs=0.05) and A.local_budget(5) == A.budget.MIN_BUDGET_S


def _timed(name: str, seconds: float, budgeted: bool, seen: dict) -> A.Alternative:
    def fit(data: A.FitData):
        seen[name] = (data.time_budget_s, len(seen))
        end = time.process_time() + seconds  # the budget counts CPU seconds: burn them (a sleep spends none)
        while time.process_time() < end:
            pass
        return ["{}"] * len(data.test_prompts), {}

    return A.Alternative(name, name, "lib", "n/a", fit, budgeted=budgeted)


def test_budgeted_alternatives_fit_last_with_what_the_others_left(tmp_path):
    seen: dict = {}
    data = replace(_data(_rows()), time_budget_s=5.0)
    alts = [_timed("tagger", 0.0, True, seen), _timed("crf_like", 0.3, False, seen), _timed("nn_like", 0.2, False, seen)]
    out = A.fit_alternatives(data, alts, None)
    assert [f.name for f in out] == ["tagger", "crf_like", "nn_like"]  # reported in registered order
    assert seen["tagger"][1] == 2 and seen["crf_like"][0] == 5.0  # fitted last
    assert 4.3 < seen["tagger"][0] <= 4.5  # 5 CPU seconds less the 0.5 the others burnt


def test_spacy_ner_stops_at_its_time_budget_and_records_the_epochs_run():
    data = _data(_rows())
    fit = A.fit_one(taggers.SPACY_NER, replace(data, time_budget_s=0.01))
    assert fit.error is None and len(fit.predictions) == len(data.test_prompts)
    d = fit.details
    assert d["stopped"] == "time_budget" and d["epochs_run"] == 1 and d["budget_s"] == 0.01 and d["validation_rows"] == 20
    assert all(list(json.loads(p)) == ["person", "location"] for p in fit.predictions)


def test_spacy_ner_stops_early_on_validation_f1_and_keeps_its_best_epoch(monkeypatch):
    """Real spaCy updates on real rows; the validation scores are planted: best at epoch 3, no better in the next three."""
    import spacy
    from spacy.training import Example

    monkeypatch.setattr(taggers, "SPACY_EPOCHS", 20)
    rows = _rows()[:40]
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("ner")
    schema = taggers.SpanSchema.from_answers([r["entities"] for r in rows])
    for key in schema.fields:
        ner.add_label(key)
    examples = [Example.from_dict(nlp.make_doc(r["text"]), {"entities": []}) for r in rows]
    optimizer = nlp.initialize(lambda: examples)
    planted = iter([0.0, 0.2, 0.3, 0.25, 0.3, 0.28, 0.9])  # best at epoch 3, then SPACY_PATIENCE (3) epochs no better
    weights: list[bytes] = []

    def validate() -> float:
        weights.append(ner.to_bytes())
        return next(planted)

    run = taggers._train_spacy(nlp, ner, examples, optimizer, None, validate, 13)
    assert taggers.SPACY_PATIENCE == 3
    assert run["stopped"] == "early_stopping" and run["epochs_run"] == 6 and run["best_epoch"] == 3
    assert run["validation_f1"] == [0.0, 0.2, 0.3, 0.25, 0.3, 0.28]
    assert ner.to_bytes() == weights[2] != weights[5]  # epoch 3's weights restored


def test_eval_reports_a_local_alternative_over_its_share_as_evl053(tmp_path):
    """The real nearest-neighbour fit on real rows, with the share lowered so that its seconds exceed it."""
    import tunerail

    model, adapter = cached_tiny_pair()
    rows = [{**r, "entities": _rewritten(r["entities"])} for r in _rows()]
    res = tunerail.evaluate(
        _config(few_shot=0, alternatives_budget_share=1e-4),  # the share lowered so the real fit's seconds exceed it
        test_data=write_jsonl(tmp_path / "test.jsonl", rows[FIT : FIT + 8]),
        train_data=write_jsonl(tmp_path / "train.jsonl", rows[:40]),
        adapter_dir=adapter,
        base_model=str(model),
        out_dir=tmp_path / "out",
        cache_dir=None,
    )
    [slow] = [f for f in res.findings if f.code == "EVL053"]
    nn = next(b for b in res.baselines if b["name"] == "nearest_neighbour")
    assert slow.details["alternative"] == "nearest_neighbour" and slow.details["seconds"] == pytest.approx(nn["seconds"], abs=0.01)
    # the message names it with its seconds (rounded to 0.1 s from the raw time, so compared loosely: 0.0496 s reads "0.0")
    named = re.search(r"nearest_neighbour (\d+\.\d) s", slow.message)
    assert named and abs(float(named.group(1)) - nn["seconds"]) <= 0.06 and Severity(slow.severity) == Severity.WARNING
    report = json.loads(Path(res.report_json).read_text(encoding="utf-8"))
    assert any(f["code"] == "EVL053" for f in report["findings"])


def test_beating_an_alternative_the_budget_cut_before_it_converged_is_not_ready():
    """A spaCy fit cut by the time budget mid-climb is weaker than what a team would ship: beating it proves nothing."""
    from tunerail.config import CriteriaConfig
    from tunerail.eval.compare import Draws, baseline_table, estimates
    from tunerail.eval.verdict import VerdictInputs, decide

    refs = [json.dumps({"person": [f"P{i}"], "location": []}) for i in range(40)]
    half = [r if i % 2 else "{}" for i, r in enumerate(refs)]  # the alternative finds half the people
    scored = {"tuned": tasks.score("extraction", refs, refs, []), "base": tasks.score("extraction", refs, ["{}"] * 40, [])}
    scored["spacy_ner"] = tasks.score("extraction", refs, half, [])
    metrics = {m: estimates(s, 40, 300) for m, s in scored.items()}
    criteria = CriteriaConfig(metric="field_f1", threshold=0.0, margin=1.0)

    def verdict(stopped: str) -> tuple[str, list]:
        fit = A.Fitted("spacy_ner", "spaCy NER trained on your rows", "spaCy", half, 1.0)
        fit.details = {"stopped": stopped, "epochs_run": 2, "best_epoch": 2}
        table = baseline_table(scored, metrics, "field_f1", Draws(300), [fit], [], {}, set())
        inputs = VerdictInputs(
            "field_f1",
            metrics["tuned"],
            metrics["base"],
            None,
            forgetting={"worst": 0.0, "relative_change": {}},
            criteria_state="frozen",
            baselines=[b for b in table if b.get("gain") is not None],
        )
        return decide(criteria, inputs)

    ready, findings = verdict("early_stopping")  # converged and beaten: a pass
    assert ready == "READY" and any(f.code == "EVL050" and f.details["baseline"] == "spacy_ner" for f in findings)
    cut, findings = verdict("time_budget")
    [err] = [f for f in findings if f.code == "EVL054"]
    assert cut == "NOT READY" and Severity(err.severity) == Severity.ERROR and "after 2 epoch(s)" in err.message
    assert "eval.alternatives_budget_share" in err.fix


def test_no_budget_share_means_no_cap_and_no_slow_finding():
    cfg = _config(alternatives_budget_share=None)
    assert A.local_budget(258, cfg.eval.alternatives_budget_share) is None
    ran = [A.Fitted("spacy_ner", "spaCy", "spaCy", [], 200.0)]
    assert A.slow_findings(ran, 313.0, None) == [] and A.slow_findings(ran, 313.0)[0].code == "EVL053"
