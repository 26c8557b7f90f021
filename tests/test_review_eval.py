"""Eval -> review -> verdict on a tiny random Llama: criteria.human blocks READY until reviewers
have voted, `tunerail review results` folds the review into report.json/html, and a re-run eval
on the same outputs keeps it."""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("krippendorff")

sys.path.insert(0, str(Path(__file__).parent))
from eval_fixtures import cached_tiny_pair, write_jsonl  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from tunerail.config import TunerailConfig  # noqa: E402
from tunerail.findings import Severity  # noqa: E402


@pytest.fixture
def banking_test(tmp_path, banking_example):
    with banking_example.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return write_jsonl(tmp_path / "test.jsonl", [rows[i] for i in range(0, len(rows), 125)][:12])


def _config() -> TunerailConfig:
    return TunerailConfig.model_validate(
        {
            "task": "classification",
            "data": {"format": "text_label", "columns": {"label": "category"}},
            "criteria": {"metric": "accuracy", "margin": 0.5, "human": {"min_win_rate": 0.5, "min_alpha": 0.5, "min_items": 4}},
            "eval": {"forgetting": False, "bootstrap": 200},
        }
    )


def test_human_review_feeds_the_eval_verdict(banking_test, tmp_path, capsys):
    import tunerail
    from tunerail.cli import main
    from tunerail.review.app import create_app
    from tunerail.review.session import open_session

    model, adapter = cached_tiny_pair()
    out = tmp_path / "eval"
    cfg = _config()
    res = tunerail.evaluate(
        cfg, test_data=banking_test, adapter_dir=adapter, base_model=str(model), out_dir=out, cache_dir=tmp_path / "cache"
    )
    codes = {f.code: Severity(f.severity) for f in res.findings}
    assert codes["EVL060"] == Severity.ERROR and res.verdict == "NOT READY"  # review required, not done
    items = [json.loads(x) for x in (out / "review_items.jsonl").read_text().splitlines()]
    assert len(items) == 12 and {"base", "tuned", "base_ranked"} <= set(items[0]["outputs"])  # every system

    session = open_session(out, config=cfg, annotators=["alice", "bob"])
    client = TestClient(create_app(session))
    for name in ("alice", "bob"):  # both reviewers prefer the fine-tuned answer every time
        page = client.get(f"/?token={session.tokens[name]}", follow_redirects=True)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        for pos in range(session.store.queue_length(name)):
            side = "A" if session.store.assignment(name, pos)["a_is"] == "tuned" else "B"
            r = client.post(f"/item/{pos}", data={"csrf": csrf, "preference": side, "q0a": "4", "q0b": "4"})
            assert r.status_code == 200
    capsys.readouterr()
    code = main(["review", "results", str(out)])
    printed = json.loads(capsys.readouterr().out)
    assert printed["pairs"][0]["wins"]["tuned"] == printed["votes"] == 14  # 12 items, 2 rated twice
    report = json.loads((out / "report.json").read_text())
    assert report["review"]["human"]["votes"] == 14
    others = [f for f in report["findings"] if f["severity"] == "error" and f["code"] not in ("EVL060", "EVL061", "EVL062", "EVL063")]
    assert report["verdict"] == ("NOT READY" if others else "READY") and code == (1 if others else 0)
    found = {f["code"]: f["severity"] for f in report["findings"]}
    assert "EVL060" not in found and found["EVL061"] == found["EVL062"] == "info"
    assert found["EVL063"] == "warning"  # every overlapping vote agrees: alpha is 0/0, reported
    html = (out / "report.html").read_text()
    assert "Human review" in html and "Krippendorff" in html and "undefined" in html

    again = tunerail.evaluate(
        cfg, test_data=banking_test, adapter_dir=adapter, base_model=str(model), out_dir=out, cache_dir=tmp_path / "cache"
    )
    assert again.verdict == report["verdict"] and again.review["human"]["votes"] == 14
    assert "EVL060" not in {f.code for f in again.findings}  # same outputs: review still counts
