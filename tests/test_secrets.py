"""Issue 25 §2 "no secret anywhere" and issue 24 item 1 (the masker is a leaf module).

The planted set ``tests/data/secrets.jsonl`` holds detect-secrets' and gitleaks' own test cases
(see ``tests/data/secrets_README.md``); ``bench/secrets_masking.py`` measures every output on it.
"""

from __future__ import annotations

import ast
import csv
import json
import stat
import subprocess
import sys
from pathlib import Path

import tunerail
from tunerail.config import TunerailConfig
from tunerail.report.redact import redact_text

REPO = Path(__file__).resolve().parent.parent
ROWS = [json.loads(line) for line in (REPO / "tests" / "data" / "secrets.jsonl").read_text(encoding="utf-8").splitlines()]
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def _masked_share(outputs: list[str]) -> float:
    return sum(r["secret"] not in out for r, out in zip(ROWS, outputs)) / len(ROWS)


def test_planted_secrets_are_masked_in_reports_and_the_traffic_log_but_example_rows_are_not(tmp_path):
    from tunerail.pii import scan
    from tunerail.serve.traffic import TrafficLog

    assert len(ROWS) >= 200 and len({r["secret"] for r in ROWS}) >= 200 and len({r["kind"] for r in ROWS}) >= 15  # issue 25's set
    assert _masked_share([redact_text(r["text"]) for r in ROWS]) >= 0.95
    log = TrafficLog(tmp_path / "traffic.jsonl", fsync=False)
    lines = [log.encode({"prompt": r["text"], "output": "ok"}).decode() for r in ROWS]
    log.close()
    assert _masked_share([json.loads(line)["prompt"] for line in lines]) >= 0.95

    # the bundled examples hold no secret: nothing in them may be masked as one (hashes, ids, words)
    with open(REPO / "examples" / "banking77" / "train.csv", newline="", encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    texts += [json.loads(line)["text"] for line in (REPO / "examples" / "wnut17" / "posts.jsonl").read_text().splitlines()]
    flagged = [t for t in texts if any(m.kind in ("secret", "private_key") for m in scan(t))]
    assert flagged == []


def test_doctor_finds_a_password_and_an_aws_secret_key_and_masks_them_everywhere(tmp_path):
    rows = [
        {"text": f"how do I {verb} my {thing}", "label": verb} for verb in ("open", "close") for thing in ("card", "account", "app", "loan")
    ]
    rows += [
        {"text": "I can't log in, my password is Summer2024! what now?", "label": "open"},
        {"text": f"deploy fails with aws_secret_access_key = {AWS_SECRET}", "label": "close"},
    ]
    data = tmp_path / "data.csv"
    with open(data, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    cfg = TunerailConfig.model_validate({"task": "classification", "data": {"format": "text_label"}, "doctor": {"mask_pii": True}})
    out = tmp_path / "doctor"
    result = tunerail.doctor(data, cfg, semantic=False, fix=True, out_dir=out)

    flagged = {ref.index for f in result.findings if f.check == "secrets.token" for ref in f.rows}
    assert {len(rows) - 2, len(rows) - 1} <= flagged
    for name in ("findings.json", "report.html", "clean.jsonl"):
        text = (out / name).read_text(encoding="utf-8")
        assert "Summer2024" not in text and AWS_SECRET not in text and AWS_SECRET.replace("/", "\\/") not in text, name
    clean = (out / "clean.jsonl").read_text(encoding="utf-8")
    assert "my password is [SECRET]" in clean and "aws_secret_access_key = [SECRET]" in clean
    for name in ("clean.jsonl", "quarantine.jsonl"):  # rows of user text: readable by their owner only
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE((out / "findings.json").stat().st_mode) != 0o600  # reports keep the ordinary mode


def test_a_review_comment_is_stored_masked_in_a_0600_database(tmp_path):
    from tunerail.review.store import ReviewStore, Unit

    path = tmp_path / "review" / "review.sqlite"
    store = ReviewStore(path)
    units = [Unit("u1", 0, 0, "base", "tuned")]
    store.create(material_hash="0" * 64, units=units, annotators=["ann"], overlap=0.0, seed=0, pairs=[("base", "tuned")])
    comment = "B is right; ask jane.doe@gmail.com, my pwd=Qw3rty!9 works"
    store.cast("ann", "u1", preference="tuned", rubric={}, comment=comment, skip_reason=None)

    (vote,) = store.votes()
    assert vote["comment"] == "B is right; ask [EMAIL], my pwd=[SECRET] works"
    raw = b"".join(p.read_bytes() for p in path.parent.glob("review.sqlite*"))
    assert b"jane.doe@gmail.com" not in raw and b"Qw3rty" not in raw
    for p in path.parent.glob("review.sqlite*"):  # the -wal/-shm files SQLite creates copy the database's mode
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p.name


def test_the_masker_is_a_leaf_and_findings_no_longer_load_the_doctor():
    tree = ast.parse((REPO / "tunerail" / "pii.py").read_text(encoding="utf-8"))
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m and m.split(".")[0] == "tunerail"]

    code = (
        "import sys, tunerail.findings as f\n"
        "print(f.Finding('x.y', f.Severity.INFO, 'my password is hunter2', 'fix').message)\n"
        "print(sorted(m for m in sys.modules if m.startswith('tunerail.doctor')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout.splitlines()
    assert out == ["my password is [SECRET]", "[]"]


def test_mlflow_params_tags_and_logged_config_are_masked():
    from tunerail.train.tracking import MlflowTracker

    class Client:  # records what would reach the MLflow server
        def __init__(self):
            self.sent: list[str] = []

        def get_run(self, run_id):
            return type("Run", (), {"data": type("Data", (), {"params": {}})()})()

        def log_batch(self, run_id, params=(), metrics=()):
            self.sent += [f"{p.key}={p.value}" for p in params]

        def set_tag(self, run_id, key, value):
            self.sent.append(f"{key}={value}")

        def log_text(self, run_id, text, name):
            self.sent.append(text)

    tracker = MlflowTracker.__new__(MlflowTracker)  # no server: only what the tracker sends is checked
    tracker.run_id, tracker._client = "r1", Client()
    token = "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"
    tracker.log_params({"model.base": "bundled:smollm2", "hub.token": token, "note": "ask jane.doe@gmail.com"})
    tracker.set_tags({"data.url": "https://bot:pa55W0rd9@data.internal/x.jsonl"})
    tracker.log_dict({"hub": {"token": token}}, "config.json")
    sent = "\n".join(tracker._client.sent)
    assert "model.base=bundled:smollm2" in sent and "hub.token=[SECRET]" in sent and "note=ask [EMAIL]" in sent
    assert token not in sent and "pa55W0rd9" not in sent and "jane.doe" not in sent


def test_split_files_are_created_0600_and_the_manifest_is_not(tmp_path):
    from tunerail.split import split

    with open(REPO / "examples" / "banking77" / "train.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[:300]
    data = tmp_path / "d.csv"
    with open(data, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows(rows)
    cfg = TunerailConfig.model_validate(
        {
            "task": "classification",
            "data": {"format": "text_label", "columns": {"text": "text", "label": "category"}},
            "criteria": {"margin": 0.2},
            "split": {"semantic": False},
        }
    )
    split(data, cfg, out_dir=tmp_path / "out", store=tmp_path / "store")
    for name in ("train.jsonl", "validation.jsonl", "test.jsonl"):
        assert stat.S_IMODE((tmp_path / "out" / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE((tmp_path / "out" / "split.json").stat().st_mode) != 0o600


def test_long_inputs_are_masked_in_linear_time():
    """A credential-key pattern with an unbounded prefix took 180 s on 100 kB of hex (quadratic backtracking)."""
    import os
    import time

    from tunerail.pii import mask

    for text in (os.urandom(50_000).hex(), "a_" * 25_000 + " token", "api_key=" * 6_000):
        start = time.perf_counter()
        mask(text)
        assert time.perf_counter() - start < 20, text[:20]
