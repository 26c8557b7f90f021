"""The doctor's outputs: findings.json determinism, report.html escaping, --fix reconciliation,
crash and skip reporting, CLI exit codes."""

from __future__ import annotations

import json

from doctor_helpers import alpaca, banking, write_csv, write_jsonl
from tunerail.cli import main
from tunerail.config import TunerailConfig
from tunerail.data.records import Record
from tunerail.doctor import doctor
from tunerail.doctor.fix import plan_fix
from tunerail.doctor.registry import _REGISTRY, Check, all_checks
from tunerail.data.records import RowRef
from tunerail.findings import Finding, Severity

CFG = TunerailConfig(doctor={"disabled_checks": ["lengths.truncated"]})


def _planted_file(tmp_path, shared_data):
    rows: list = alpaca(shared_data)[:80]
    rows[5] = dict(rows[2])  # exact duplicate of row 2
    rows[6] = {**rows[2], "instruction": rows[2]["instruction"].upper()}  # duplicate after case folding
    rows[9] = '{"instruction": "broken'  # malformed line 10
    rows[11]["output"] = "<nooutput>"
    rows[12]["output"] = ""
    rows[20]["output"] = "Click <script>alert(1)</script> then </script><b>bold</b>"
    rows[30]["output"] += " My key is AKIAIOSFODNN7EXAMPLE, mail jo.kim@gmail.com."
    return write_jsonl(tmp_path / "data.jsonl", rows)


def test_findings_json_is_byte_identical_across_runs(tmp_path, shared_data):
    path = _planted_file(tmp_path, shared_data)
    doctor(path, CFG, out_dir=tmp_path / "a", fix=True, semantic=False)
    doctor(path, CFG, out_dir=tmp_path / "b", fix=True, semantic=False)
    for name in ("findings.json", "clean.jsonl", "quarantine.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    payload = json.loads((tmp_path / "a" / "findings.json").read_text())
    assert set(payload) == {"summary", "findings"}
    first = payload["findings"][0]
    assert {"check", "severity", "rows", "message", "fix"} <= set(first)
    assert all(set(r) == {"index", "line"} for f in payload["findings"] for r in f["rows"])
    (dup,) = [f for f in payload["findings"] if f["check"] == "duplicates.exact"]
    assert [r["index"] for r in dup["rows"]] == [2, 5, 6] and dup["cluster"].startswith("exact-")
    run_json = json.loads((tmp_path / "a" / "run.json").read_text())
    assert "total" in run_json["timings_s"] and "timings" not in json.dumps(payload)


def test_fix_reconciles_counts_and_quarantines_with_reasons(tmp_path, shared_data):
    path = _planted_file(tmp_path, shared_data)
    result = doctor(path, CFG, out_dir=tmp_path / "out", fix=True, semantic=False)
    fx = result.fix.summary()
    assert fx["rows_in"] == 80 == fx["kept"] + fx["quarantined"] == result.summary["fix"]["rows_in"]
    clean = [json.loads(x) for x in (tmp_path / "out" / "clean.jsonl").read_text().splitlines()]
    quarantine = [json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert len(clean) + len(quarantine) == 80 and len(clean) == fx["kept"]
    why = {q["_tunerail"]["index"]: q["_tunerail"]["check"] for q in quarantine}
    assert why == {
        5: "duplicates.exact",
        6: "duplicates.exact",
        9: "format.unparseable",
        11: "instruct.placeholder_output",
        12: "format.missing_field",
    }
    broken = next(q for q in quarantine if q["_tunerail"]["index"] == 9)["_tunerail"]
    assert broken["line"] == 10 and broken["raw"] == '{"instruction": "broken' and broken["code"] == "DOC001"
    kept_dup = next(q for q in quarantine if q["_tunerail"]["index"] == 5)["_tunerail"]
    assert kept_dup["kept"] == {"index": 2, "line": 3}
    assert 2 in {c["_tunerail"]["index"] for c in clean}


def _rec(i: int) -> Record:
    return Record(RowRef(i, i + 1, "f"), "prompt_completion", [], f"p{i}", f"c{i}", fields={"prompt": f"p{i}"})


def test_fix_applies_any_cluster_that_declares_a_fix_action():
    """The contract with the ML checks: clusters say details.fix_action; duplicates.near is thinned by default."""
    records = [_rec(i) for i in range(8)]
    near = Finding(
        "duplicates.near", Severity.WARNING, "m", "f", rows=[RowRef(1, 2, "f"), RowRef(4, 5, "f"), RowRef(6, 7, "f")], cluster="near-1"
    )
    semantic = Finding(
        "duplicates.semantic",
        Severity.WARNING,
        "m",
        "f",
        rows=[RowRef(2, 3, "f"), RowRef(3, 4, "f")],
        cluster="sem-1",
        details={"fix_action": "drop_except_first"},
    )
    conflict = Finding("conflicts.label", Severity.ERROR, "m", "f", rows=[RowRef(0, 1, "f"), RowRef(5, 6, "f")])  # no action: kept
    outlier = Finding("outliers.embedding", Severity.WARNING, "m", "f", rows=[RowRef(7, 8, "f")], details={"fix_action": "drop"})
    plan = plan_fix(records, [], [near, semantic, conflict, outlier])
    assert [r.index for r in plan.kept] == [0, 1, 2, 5]
    assert {q.ref.index: q.check for q in plan.quarantined} == {
        3: "duplicates.semantic",
        4: "duplicates.near",
        6: "duplicates.near",
        7: "outliers.embedding",
    }
    assert plan.summary()["rows_in"] == len(plan.kept) + len(plan.quarantined)


def test_report_html_escapes_every_data_string(tmp_path, shared_data):
    path = _planted_file(tmp_path, shared_data)
    doctor(path, CFG, out_dir=tmp_path / "out", semantic=False)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<script" not in html and "</script>" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "format.markup" in html and "duplicates.exact" in html and "<svg" in html
    assert "secrets.token" in html and "AKIAIOSFODNN7EXAMPLE" not in html and "jo.kim@gmail.com" not in html  # masked examples


def test_crashing_check_becomes_an_error_finding(tmp_path, monkeypatch, banking_example):
    def boom(ctx):
        """Always fails."""
        raise RuntimeError("kaput")

    monkeypatch.setitem(_REGISTRY, "DOC049", Check("DOC049", "test.boom", boom, "Always fails."))
    result = doctor(banking_example, CFG, semantic=False)
    (f,) = [f for f in result.findings if f.check == "doctor.check_crashed"]
    assert f.severity is Severity.ERROR and "test.boom" in f.message and "RuntimeError: kaput" in f.message
    assert result.fails("error") and "language.mismatch" in result.checks_run  # the other checks still ran


def test_skipped_checks_are_recorded(tmp_path, monkeypatch, banking_example):
    monkeypatch.setitem(_REGISTRY, "DOC049", Check("DOC049", "test.semantic", lambda ctx: [], "x", frozenset({"embeddings"})))
    cfg = TunerailConfig(model={"base": str(tmp_path / "no-such-model")}, doctor={"disabled_checks": ["pii.phone"]})
    result = doctor(banking_example, cfg, out_dir=tmp_path / "out", semantic=False)
    reasons = {s.name: s.reason for s in result.skipped}
    assert reasons["pii.phone"] == "disabled in doctor.disabled_checks"
    assert reasons["test.semantic"].startswith("semantic checks are off")
    assert reasons["lengths.truncated"].startswith("model unavailable")
    embedding_checks = {c.name for c in all_checks() if "embeddings" in c.needs}  # incl. the planted one
    assert reasons["lengths.unfinished"] == "model checks are off (doctor.model_checks: false)"  # opt-in: it reads every row with an LM
    assert {s["check"] for s in result.summary["checks_skipped"]} == {
        "pii.phone",
        "lengths.truncated",
        "lengths.unfinished",
    } | embedding_checks
    assert all(reasons[name].startswith("semantic checks are off") for name in embedding_checks)
    assert "test.semantic" in (tmp_path / "out" / "report.html").read_text()


def _err(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())  # rich wraps long lines


def test_cli_exit_codes(tmp_path, shared_data, banking_example, capsys):
    cfg = tmp_path / "tunerail.yaml"
    cfg.write_text("task: classification\ncriteria: {threshold: 0.5}\ndoctor:\n  disabled_checks: [lengths.truncated]\n")
    csv_path = write_csv(tmp_path / "b.csv", banking(banking_example)[:400])
    out = str(tmp_path / "out")
    assert main(["doctor", str(csv_path), "--config", str(cfg), "--out", out, "--no-semantic"]) == 0
    assert main(["doctor", str(csv_path), "--config", str(cfg), "--out", out, "--no-semantic", "--fail-on", "warning"]) == 1
    err = _err(capsys)
    assert "size.eval_split" in err and "Traceback" not in err

    bad = _planted_file(tmp_path, shared_data)
    assert main(["doctor", str(bad), "--config", str(cfg), "--out", out, "--no-semantic", "--fix"]) == 1
    assert "rows in 80 = kept 75 + quarantined 5" in _err(capsys)

    assert main(["doctor", str(tmp_path / "missing.jsonl"), "--out", out]) == 2
    assert "file not found" in _err(capsys)
    assert main(["doctor", "--out", out]) == 2  # no DATA and no data.path

    cfg.write_text(
        f"task: classification\ncriteria: {{threshold: 0.5}}\ndata:\n  path: {csv_path.name}\ndoctor:\n  disabled_checks: [lengths.truncated]\n"
    )
    assert main(["doctor", "--config", str(cfg), "--out", out, "--no-semantic"]) == 0


def test_unknown_disabled_check_is_a_config_error(banking_example):
    import pytest

    from tunerail.errors import ConfigError

    with pytest.raises((ConfigError, ValueError), match="did you mean 'pii.phone'"):  # now at config load
        doctor(banking_example, TunerailConfig(doctor={"disabled_checks": ["pii.phon"]}), semantic=False)
