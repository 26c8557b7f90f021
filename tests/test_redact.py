"""Issue 13 §4: secrets and personal data quoted from rows never reach a report, JSON file or message."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import tunerail
from tunerail.config import TunerailConfig
from tunerail.findings import Finding, Severity, dumps
from tunerail.report.redact import redact_text
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


def test_passwords_and_keys_in_prose_and_config_shapes_are_masked_but_words_hashes_and_paths_stay():
    """Issue 25 §2: the shapes the masker missed (prose, pwd=, passwd:, YAML/JSON/ini/env, AWS secret keys, basic auth)."""
    from tunerail.pii import mask

    masked = {
        "my password is hunter2": "my password is [SECRET]",
        "login failed, pwd=Qw3rty!9 on the portal": "login failed, pwd=[SECRET] on the portal",
        "passwd: n0t-so-s3cret": "passwd: [SECRET]",
        "database:\n  password: hX7pL2qW9z\n  user: app": "database:\n  password: [SECRET]\n  user: app",
        '{"password": "J8d!ks92Lm"}': '{"password": "[SECRET]"}',
        "[db]\npassword = Vb93kLs0q": "[db]\npassword = [SECRET]",
        "export DB_PASSWORD=p4ssW0rdEnv": "export DB_PASSWORD=[SECRET]",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY": "aws_secret_access_key = [SECRET]",
        "git clone https://deploy:gh0stR1der@git.internal.net/r.git": "git clone https://deploy:[SECRET]@git.internal.net/r.git",
        "HF_TOKEN=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 python app.py": "HF_TOKEN=[SECRET] python app.py",
    }
    for text, want in masked.items():
        assert mask(text) == want, text
        assert redact_text(text) == want, text  # the report pre-filter lets every shape through
    kept = [
        "Reset your password: click the link below.",
        "my password is incorrect, what should I do?",
        "split 3f786850e387550fdab836ed7e6dc881de23001b, test sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "request 123e4567-e89b-12d3-a456-426614174000 saved to /Users/JaneDoe/Project2023/src/main.py",
        "The secret: always be kind to the support agent",
    ]
    for text in kept:
        assert mask(text) == text
