"""`tunerail monitor`: no alert on in-distribution traffic, an alert with the planted out-of-scope
requests as examples on a CLINC150 out-of-scope mix, an escaped report, one corrected family."""

from __future__ import annotations

import json

import pytest
from serve_fixtures import banking_shuffled, make_run, oos_rows

from tunerail.cli import main
from tunerail.monitor import monitor
from tunerail.serve.traffic import TrafficLog

XSS = "<script>alert('x')</script> zqxj vvkw plorf grumbleflux"  # far from every banking query


def _log(path, rows):
    log = TrafficLog(path, fsync=False)
    for r in rows:
        log.append(
            {
                "time": "2026-12-01T10:00:00+00:00",
                "status": 200,
                "prompt": r["text"],
                "output": r["category"],
                "label": r["category"] if r["category"] != "oos" else None,
                "latency_ms": 5.0,
            }
        )
    log.close()
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("monitor"), n_train=1000, n_test=300, adapter=False, monitor={"examples": 60})


def test_in_distribution_traffic_raises_no_alert(run, tmp_path):
    traffic = _log(tmp_path / "traffic.jsonl", banking_shuffled()[1300:1500])  # unseen Banking77 rows
    result = monitor(traffic, run, window=100, out_dir=tmp_path / "out")
    assert not result.alert, [f.message for f in result.findings if f.severity == "error"]
    assert len(result.windows) == 2
    names = {t["name"] for w in result.windows for t in w["tests"]}
    assert {"mmd", "domain_classifier", "token_length", "out_of_scope", "label_vs_train", "label_vs_test"} <= names
    n = sum(len(w["tests"]) for w in result.windows)
    assert result.settings["tests_in_family"] == n and result.settings["level_per_test"] == pytest.approx(0.05 / n)
    saved = json.loads((tmp_path / "out" / "monitor.json").read_text())
    assert saved["alert"] is False and saved["settings"]["correction"] == "bonferroni"
    assert main(["monitor", str(traffic), "--reference", str(run), "--window", "100", "--out", str(tmp_path / "cli")]) == 0


def test_out_of_scope_mix_alerts_with_the_planted_examples(run, tmp_path):
    planted = oos_rows()[:39] + [{"text": XSS, "category": "oos"}]
    mix = banking_shuffled()[1300:1460] + planted  # 20 % out of scope
    traffic = _log(tmp_path / "traffic.jsonl", mix)
    result = monitor(traffic, run, window=200, out_dir=tmp_path / "out")
    assert result.alert
    w = result.windows[0]
    oos = next(t for t in w["tests"] if t["name"] == "out_of_scope")
    assert oos["significant"] and oos["details"]["far"] >= 20
    planted_texts = {r["text"] for r in planted}
    examples = [e["prompt"] for e in w["out_of_scope_examples"]]
    assert len(examples) >= 20 and sum(e in planted_texts for e in examples) >= 0.8 * len(examples)
    alert = next(f for f in result.findings if f.code == "MON030")
    assert "input.out_of_scope" in alert.details["drifted"] and "out-of-scope requests" in alert.fix
    # the report is one file with every data string escaped
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<script>alert(" not in html
    assert "&lt;script&gt;alert(" in html  # in the out-of-scope examples table
    assert "\\u003cscript\\u003ealert(" in html  # in the embedded JSON
    assert 'src="http' not in html and "<link" not in html
    assert main(["monitor", str(traffic), "--reference", str(run), "--out", str(tmp_path / "cli")]) == 1


def test_bad_input_is_exit_2(run, tmp_path):
    (tmp_path / "traffic.jsonl").write_text('{"status": 200, "prompt": "hi"}\n', encoding="utf-8")
    assert main(["monitor", str(tmp_path / "traffic.jsonl"), "--reference", str(run)]) == 2  # too few requests
    assert main(["monitor", str(tmp_path / "missing.jsonl"), "--reference", str(run)]) == 2
    assert main(["monitor", str(tmp_path / "traffic.jsonl"), "--reference", str(run), "--since", "yesterday"]) == 2


def test_doctor_pii_check_runs_on_unmasked_traffic(run, tmp_path):
    rows = banking_shuffled()[1300:1340]
    log = TrafficLog(tmp_path / "traffic.jsonl", mask_pii=False, fsync=False)
    for i, r in enumerate(rows):
        prompt = r["text"] + (" - write to john.smith@gmail.com" if i == 7 else "")
        log.append({"status": 200, "prompt": prompt, "output": r["category"], "label": r["category"]})
    log.close()
    result = monitor(tmp_path / "traffic.jsonl", run, window=40, out_dir=tmp_path / "out")
    pii = [f for f in result.findings if f.code == "MON020" and f.check == "quality.pii.email"]
    assert len(pii) == 1 and [r.line for r in pii[0].rows] == [8]
