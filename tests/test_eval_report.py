"""End to end on a tiny random Llama (SmolLM2 tokenizer): wiring, cache, report escaping, review."""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from eval_fixtures import JudgeServer, cached_tiny_pair, write_jsonl  # noqa: E402

from tunerail.config import TunerailConfig  # noqa: E402
from tunerail.errors import TunerailError  # noqa: E402
from tunerail.eval.report import write_eval_report  # noqa: E402
from tunerail.findings import Severity  # noqa: E402
from tunerail.review import ReviewRow, export_for_review, import_ratings, slices, worst_cases  # noqa: E402
from tunerail.review.material import key_path  # noqa: E402

XSS = "<script>alert('x')</script>"


@pytest.fixture(scope="module")
def tiny():
    return cached_tiny_pair()


@pytest.fixture
def banking_test(tmp_path, banking_example):
    with banking_example.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    picked = [rows[i] for i in range(0, len(rows), 125)][:12]  # 12 rows over several intents
    picked[0]["text"] = XSS + " my card & PIN"
    return write_jsonl(tmp_path / "test.jsonl", picked)


def _config(**eval_kw) -> TunerailConfig:
    return TunerailConfig.model_validate(
        {
            "task": "classification",
            "data": {"format": "text_label", "columns": {"label": "category"}},
            "prompts": [{"version": "v1", "system": "Answer with the intent label only."}],
            "criteria": {"metric": "accuracy", "threshold": 0.7, "margin": 0.5},
            "eval": {"forgetting": False, "bootstrap": 200, **eval_kw},
        }
    )


def test_evaluate_end_to_end_writes_escaped_report_and_caches(tiny, banking_test, tmp_path):
    import tunerail

    model, adapter = tiny
    train_json = tmp_path / "train.json"
    train_json.write_text(
        json.dumps({"history": [{"step": 1, "train_loss": 3.0, "val_loss": 3.2}, {"step": 2, "train_loss": 2.0, "val_loss": 2.5}]})
    )
    cfg = _config(label_ranking=True)
    cache = tmp_path / "cache"

    with JudgeServer(_judge_prefers_base) as srv:
        cfg.eval.judge = cfg.eval.judge.model_copy(
            update={"enabled": True, "endpoint": srv.url, "model": "j", "rubric": {"correctness": "ok?"}, "max_pairs": 4}
        )
        res = tunerail.evaluate(
            cfg,
            test_data=banking_test,
            adapter_dir=adapter,
            base_model=str(model),
            out_dir=tmp_path / "out",
            train_json=train_json,
            cache_dir=cache,
            lineage={"snapshot": "sha256:abc"},
        )
    assert len(srv.requests) == 8 and res.judge["calls"] == 8 and len(res.judge["rows"]) == 4
    assert res.judge["parse_failures"] == 0 and res.judge["position_consistency"] == 1.0
    assert res.judge["base_win_rate"] == 1.0
    assert any(f.code == "EVL030" and Severity(f.severity) == Severity.ERROR for f in res.findings)
    cfg.eval.judge = cfg.eval.judge.model_copy(update={"enabled": False})
    # a random model cannot reach 70 %: NOT READY with the threshold criterion failing
    assert res.verdict == "NOT READY" and not res.ready
    codes = {f.code: Severity(f.severity) for f in res.findings}
    assert codes["EVL001"] == Severity.ERROR and codes["EVL007"] == Severity.WARNING and codes["EVL011"] == Severity.WARNING
    # zero-shot free and ranked base, constrained (verdict) and free tuned; no train split: no cheap baselines
    assert set(res.metrics) == {"base", "base_ranked", "tuned", "tuned_free"} and res.rows == 12
    assert codes["EVL051"] == Severity.WARNING and res.prompt["decoding"] == "both"
    assert {"accuracy", "macro_f1", "accuracy_ranking", "perplexity"} <= set(res.metrics["tuned"])
    ranking = res.metrics["tuned"]["accuracy_ranking"]["value"]
    assert 0 <= ranking <= 1 and "exact McNemar" in res.significance["mcnemar"]["test"]  # statsmodels or scipy

    html = Path(res.report_html).read_text(encoding="utf-8")
    assert XSS not in html and "&lt;script&gt;alert(" in html
    assert "NOT READY" in html and "EVL001" in html and "training and validation loss" in html
    assert len(re.findall(r"<script\b", html)) == 1  # only our JSON data island
    report = json.loads(Path(res.report_json).read_text(encoding="utf-8"))
    assert report["verdict"] == "NOT READY" and report["lineage"]["snapshot"] == "sha256:abc"
    assert report["prompt"]["version"] == "v1" and report["criteria"]["hash"] == cfg.criteria_hash()
    with open(res.review["export"], newline="", encoding="utf-8") as handle:
        exported = list(csv.DictReader(handle))
    assert len(exported) == 12 and all(r["rating_a"] == "" for r in exported)

    # second run: every model output comes from the cache (counted, not timed)
    from tunerail.eval.generate import CACHE_STATS

    before = dict(CACHE_STATS)
    again = tunerail.evaluate(
        cfg, test_data=banking_test, adapter_dir=adapter, base_model=str(model), out_dir=tmp_path / "out2", cache_dir=cache
    )
    assert again.metrics["tuned"]["accuracy"] == res.metrics["tuned"]["accuracy"]
    assert CACHE_STATS["misses"] == before["misses"] and CACHE_STATS["hits"] > before["hits"]


def _judge_prefers_base(_text: str, call_no: int) -> str:
    """Calls alternate (base, tuned) then (tuned, base) per pair: always pick the base answer."""
    winner = "A" if call_no % 2 == 1 else "B"
    return json.dumps({"A": {"correctness": 4}, "B": {"correctness": 2}, "winner": winner})


def test_report_escapes_model_outputs(tiny, banking_test, tmp_path):
    """Model text with markup (here planted into the result) must be inert in report.html."""
    import tunerail

    model, _ = tiny
    res = tunerail.evaluate(_config(), test_data=banking_test, base_model=str(model), out_dir=tmp_path / "o", cache_dir=None)
    assert any(f.code == "EVL040" for f in res.findings)  # no adapter: base judged against itself
    res.review["worst"][0]["tuned"] = XSS
    res.review["samples"][0]["base"] = '"><img src=x onerror=alert(1)>'
    res.classification["tuned"]["per_class"][0]["label"] = "<b>label</b>"
    write_eval_report(res, tmp_path / "o")
    html = (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    assert XSS not in html and "<img src=x" not in html and "<b>label</b>" not in html
    assert "&lt;b&gt;label&lt;/b&gt;" in html


def test_compare_prompts_records_choice(tiny, banking_test):
    from tunerail.eval import compare_prompts

    model, _ = tiny
    cfg = _config()
    cfg.prompts = [cfg.prompts[0], cfg.prompts[0].model_copy(update={"version": "v2", "system": "Intent label?"})]
    out = compare_prompts(cfg, banking_test, base_model=str(model), cache_dir=None, limit=6)
    assert [v["version"] for v in out["variants"]] == ["v1", "v2"]
    assert out["chosen"] in {"v1", "v2"} and out["split"] == "validation" and out["rows"] == 6
    best = max(out["variants"], key=lambda v: v["value"])
    assert out["chosen"] == best["version"]


def test_unknown_metric_is_a_clear_error(tiny, banking_test, tmp_path):
    import tunerail

    model, _ = tiny
    cfg = _config()
    cfg.criteria.metric = "rougeL"
    with pytest.raises(TunerailError, match="criteria.metric 'rougeL' is not computed"):
        tunerail.evaluate(cfg, test_data=banking_test, base_model=str(model), out_dir=tmp_path / "o", cache_dir=None)


# --- review material (pure) -------------------------------------------------------------------


def _rows():
    return [
        ReviewRow(i, i + 2, "x" * (10 * (i + 1)), "ref", "base", "tuned", float(i % 2), float(i % 3 == 0), "a" if i < 3 else "b")
        for i in range(6)
    ]


def test_slices_and_worst_cases():
    rows = _rows()
    by_class = {s["slice"]: s for s in slices(rows)["by_class"]}
    assert by_class["a"]["n"] == 3 and by_class["a"]["tuned"] == pytest.approx(1 / 3)
    assert sum(s["n"] for s in slices(rows)["by_length"]) == 6
    worst = worst_cases(rows, 2)
    assert all(r.tuned_score == 0 for r in worst) and worst[0].base_score == 1.0  # regressions first


def test_review_export_import_roundtrip(tmp_path):
    path = export_for_review(_rows(), tmp_path / "review.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert "a_is" not in rows[0]  # the answer key is not in the file raters fill in
    with key_path(path).open(newline="", encoding="utf-8") as handle:
        a_is = {k["index"]: k["a_is"] for k in csv.DictReader(handle)}
    for r in rows:
        r["rating_a" if a_is[r["index"]] == "tuned" else "rating_b"] = "5"
        r["rating_b" if a_is[r["index"]] == "tuned" else "rating_a"] = "2"
    rows[5]["rating_a"] = rows[5]["rating_b"] = ""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = import_ratings(path)
    assert summary["rated"] == 5 and summary["mean_rating"] == {"base": 2.0, "tuned": 5.0}
    rows[2]["rating_a"] = "great"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(TunerailError) as err:
        import_ratings(path)
    assert err.value.problems[0].line == 4 and err.value.problems[0].field == "rating_a"


def test_few_shot_messages_cover_several_classes(banking_test):
    from tunerail.config import PromptTemplate
    from tunerail.prompting import build_messages
    from tunerail.eval.inputs import load_rows as _load
    from tunerail.tasks import pick_shots

    cfg = _config(few_shot=3)
    shots = pick_shots(_load(cfg, banking_test)[0], cfg.eval.few_shot)
    assert len(shots) == 3 and len({s[1] for s in shots}) == 3  # one example per label first
    msgs = build_messages("my card", PromptTemplate(system="S", template="Q: {prompt}"), shots)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert msgs[-1]["content"] == "Q: my card" and msgs[2]["content"] == shots[0][1]


def test_cli_review_import(tmp_path, capsys):
    from tunerail.cli import main

    path = export_for_review(_rows()[:2], tmp_path / "review.jsonl")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    for rec in lines:
        rec["rating_a"], rec["rating_b"] = 4, 3
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert main(["review", "import", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rated"] == 2 and out["ratings"] == {"base": 2, "tuned": 2}
    assert main(["review", "import", str(tmp_path / "missing.csv")]) == 2


def test_cli_eval_exits_1_on_not_ready(tiny, banking_test, tmp_path, capsys):
    from tunerail.cli import main

    model, adapter = tiny
    config = tmp_path / "tunerail.yaml"
    config.write_text(
        "task: classification\n"
        "data: {format: text_label, columns: {label: category}}\n"
        "prompts: [{version: v1, system: Answer with the intent label only.}]\n"
        "criteria: {metric: accuracy, threshold: 0.9, margin: 0.5}\n"
        "eval: {forgetting: false, bootstrap: 200, cache: false}\n"
    )
    code = main(
        [
            "eval",
            "--config",
            str(config),
            "--test",
            str(banking_test),
            "--adapter",
            str(adapter),
            "--base",
            str(model),
            "--out",
            str(tmp_path / "rep"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1, err
    assert "NOT READY" in err and "EVL001" in err and (tmp_path / "rep" / "report.html").exists()
