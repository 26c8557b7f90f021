"""Issue 13 §4: secrets and personal data quoted from rows never reach a report, JSON file or message."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import tunerail
from tunerail.config import TunerailConfig
from tunerail.findings import Finding, Severity, dumps
from tunerail.split.leakage import leakage

KEY = "sk-proj-Zq8LmN3pR7vX2bT9wK4yH6jD"
CARD = "4111 1111 1111 1111"
PHONE = "+1 415-555-0132"
EMAIL = "jane.doe@gmail.com"
SECRETS = [KEY, CARD, PHONE, EMAIL, "4111111111111111", "415-555-0132", "jane.doe"]
ROW = f"My card {CARD} was charged twice, call me at {PHONE} or mail {EMAIL}, my key is {KEY}"


def _dataset(path: Path) -> Path:
    rows = [
        (f"how do I {verb} my {thing} today", label)
        for label, verb in (("cards", "activate"), ("transfers", "send"), ("refunds", "return"))
        for thing in ("card", "money", "order", "parcel", "account", "phone", "laptop", "ticket", "bike", "watch")
    ]
    rows += [(ROW, "billing")] * 3 + [(ROW, "fraud")]  # exact duplicates and a label conflict quoting the row
    rows += [("please escalate this one", f"vip {EMAIL}")]  # a small class whose label is personal data
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def _assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into {where}"


def test_no_secret_in_any_doctor_or_leakage_output(tmp_path):
    data = _dataset(tmp_path / "data.csv")
    out = tmp_path / "doctor"
    result = tunerail.doctor(data, semantic=False, fix=True, out_dir=out)
    checks = {f.check for f in result.findings}
    assert {"duplicates.exact", "labels.conflict", "balance.small_class", "pii.card_number", "secrets.token"} <= checks
    for f in result.findings:
        _assert_clean(f.message + f.fix + json.dumps(f.details), f"finding {f.check}")
    for name in ("findings.json", "report.html", "run.json"):
        _assert_clean((out / name).read_text(encoding="utf-8"), name)
    assert "[CARD_NUMBER]" in (out / "findings.json").read_text(encoding="utf-8")

    cfg = TunerailConfig.model_validate({"task": "classification", "data": {"format": "text_label"}})
    test = tmp_path / "test.jsonl"
    test.write_text(json.dumps({"text": ROW, "label": f"vip {EMAIL}"}) + "\n", encoding="utf-8")
    leaks = leakage({"train": data, "test": test}, config=cfg, semantic=False, out_dir=tmp_path / "leak")
    assert leaks.findings
    for name in ("leakage.json", "leakage.html"):
        _assert_clean((tmp_path / "leak" / name).read_text(encoding="utf-8"), name)


def test_every_report_template_value_and_json_report_is_redacted():
    # eval examples, labels and any other value a report template renders pass the Jinja finalize hook
    from tunerail.report.render import environment

    template = environment().from_string("{% for e in examples %}{{ e.prompt }} {{ e.label }} {{ e.answer[:30] }}{% endfor %}")
    html = template.render(examples=[{"prompt": ROW, "label": f"vip {EMAIL}", "answer": f"write to {EMAIL} now"}])
    _assert_clean(html, "an HTML report")
    _assert_clean(dumps({"examples": [{"prompt": ROW, "label": EMAIL, EMAIL: 1}]}), "a JSON report")


def test_finding_masks_message_fix_and_details_labels():
    f = Finding("x.y", Severity.WARNING, f"quoted: {ROW}", f"relabel '{EMAIL}'", details={"counts": {EMAIL: 2}})
    _assert_clean(f.message + f.fix + json.dumps(f.details), "a finding")
    assert "[SECRET]" in f.message and "[EMAIL]" in f.fix
