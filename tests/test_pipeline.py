"""`tunerail run` end to end on real Banking77 rows with a tiny random model (fast, not realistic).

A random model cannot classify, so the verdict must be NOT READY with the criterion named;
a second run must skip every step; editing only the eval settings re-runs only eval.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from train_tiny import BANKING, tiny_model_dir
from tunerail.cli import main
from tunerail.pipeline import run


def _project(tmp_path: Path, eval_tokens: int = 8) -> Path:
    with open(BANKING, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    labels = sorted({r["category"] for r in rows})[:4]
    picked = [r for r in rows if r["category"] in labels][:240]
    with open(tmp_path / "data.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows(picked)
    config = {
        "project": "tiny",
        "task": "classification",
        "data": {"path": "data.csv", "format": "text_label", "columns": {"text": "text", "label": "category"}},
        "model": {"base": str(tiny_model_dir()), "max_seq_length": 96},
        "prompts": [{"version": "v1", "system": "Route the banking query.", "template": "{prompt}"}],
        "criteria": {"metric": "accuracy", "threshold": 0.9, "margin": 0.15, "max_forgetting": 0.5},
        "doctor": {"semantic": False},
        "split": {"train": 0.6, "validation": 0.2, "test": 0.2, "seed": 3, "semantic": True},  # no paraphrase leaks
        "train": {"epochs": 1, "batch_size": 16, "bf16": False, "probe_steps": 0},
        "eval": {"max_new_tokens": eval_tokens, "batch_size": 32, "forgetting": False, "bootstrap": 200},
        "tracking": {"enabled": False},
        "store": {"path": "store"},
    }
    path = tmp_path / "tunerail.yaml"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is valid YAML
    return path


@pytest.mark.slow
def test_run_chains_every_step_then_skips_unchanged_ones(tmp_path):
    config = _project(tmp_path)
    first = run(config, out_dir=tmp_path / "run")
    assert [s.name for s in first.steps] == ["doctor", "split", "leakage", "train", "eval"]
    assert not any(s.skipped for s in first.steps)
    assert first.verdict == "NOT READY"
    report = json.loads((tmp_path / "run" / "eval" / "report.json").read_text())
    failed = [f for f in report["findings"] if f["severity"] == "error"]
    assert any("threshold" in f["message"] or "accuracy" in f["message"] for f in failed)
    assert (tmp_path / "run" / "eval" / "report.html").exists()

    second = run(config, out_dir=tmp_path / "run")
    assert all(s.skipped for s in second.steps) and second.verdict == "NOT READY"

    config.write_text(config.read_text().replace('"max_new_tokens": 8', '"max_new_tokens": 6'))
    third = run(config, out_dir=tmp_path / "run")
    assert [s.name for s in third.steps if not s.skipped] == ["eval"]

    assert main(["run", str(config), "--out", str(tmp_path / "run")]) == 1  # NOT READY gates CI


def _with_card_number(config: Path) -> None:
    """Append a row holding a card number: a doctor error that --fix does not resolve (mask_pii is off)."""
    data = config.parent / "data.csv"
    with open(data, "a", newline="", encoding="utf-8") as handle:
        row = next(csv.DictReader(open(data, encoding="utf-8")))
        csv.writer(handle).writerow(["my card 4111 1111 1111 1111 was charged twice, why", row["category"]])


def test_run_stops_before_training_on_doctor_errors_unless_switched_off(tmp_path, monkeypatch, capsys):
    config = _project(tmp_path)
    _with_card_number(config)
    trained = []
    import tunerail.train

    monkeypatch.setattr(tunerail.train, "train", lambda *a, **k: trained.append(1) or (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["run", str(config), "--out", str(tmp_path / "run")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "training not started" in err and "pii.card_number" in err and "pipeline.stop_on" in err
    assert not trained and not (tmp_path / "run" / "train").exists()

    cfg = json.loads(config.read_text())
    config.write_text(json.dumps({**cfg, "pipeline": {"stop_on": "never"}}))
    assert main(["run", str(config), "--out", str(tmp_path / "run")]) == 130  # reached train (stubbed: interrupted)
    gate = json.loads((tmp_path / "run" / "gate.json").read_text())
    assert trained and gate["stop_on"] == "never" and any(c.startswith("DOC") for c in gate["continued_past"])


def test_step_keys_cover_every_field_the_step_reads_and_the_version(monkeypatch):
    from tunerail.config import TunerailConfig
    from tunerail.pipeline import step_config

    base = TunerailConfig().model_dump(mode="json")
    changed = TunerailConfig(
        model={"embedding_model": "sentence-transformers/all-mpnet-base-v2"}, split={"semantic_threshold": 0.9}
    ).model_dump(mode="json")
    for step in ("split", "leakage"):
        assert step_config(step, base) != step_config(step, changed)
    assert step_config("eval", base) == step_config("eval", TunerailConfig(split={"semantic_threshold": 0.9}).model_dump(mode="json"))
    import tunerail

    before = step_config("eval", base)
    monkeypatch.setattr(tunerail, "__version__", "9.9.9")
    assert step_config("eval", base) != before


def test_run_prints_the_doctor_table_before_training(tmp_path, monkeypatch, capsys):
    """Issue 13 §8: `tunerail run` shows what the doctor found (here 12 empty labels) before training starts."""
    import tunerail.train
    from tunerail.cli._common import console as cli_console
    from tunerail.errors import TunerailError

    config = _project(tmp_path)
    data = tmp_path / "data.csv"
    lines = data.read_text(encoding="utf-8").splitlines()
    for i in range(1, 13):  # 12 rows lose their label
        lines[i] = lines[i].rsplit(",", 1)[0] + ","
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    seen_before_training = []

    def no_training(*args, **kwargs):
        captured = capsys.readouterr()
        seen_before_training.append(captured.out + captured.err)
        raise TunerailError("training stopped by the test")

    monkeypatch.setattr(tunerail.train, "train", no_training)
    monkeypatch.setattr(cli_console, "_width", 80)  # a plain terminal: check names must stay whole
    assert main(["run", str(config), "--out", str(tmp_path / "run")]) == 2
    printed = seen_before_training[0]
    rows = [line for line in printed.splitlines() if "format.missing_field" in line]
    assert rows, printed
    row = rows[0]
    assert "DOC002" in row and "error" in row and "12" in row
    assert "unresolved" in printed


def test_fixed_duplicate_clusters_count_as_resolved_but_a_kept_conflict_does_not(tmp_path):
    """--fix keeps the first row of a duplicate cluster on purpose: the cluster is resolved.

    Before, any row still in clean.jsonl made its finding "unresolved", so every duplicate the fix
    had removed was still reported (and could block training).
    """
    from tunerail.config import TunerailConfig
    from tunerail.doctor import doctor
    from tunerail.gate import unresolved_doctor_findings

    rows = [{"text": f"how do I change the PIN of card number {i} at an ATM", "label": "change_pin"} for i in range(30)]
    rows += [{"text": f"my transfer number {i} has not arrived in my account yet", "label": "transfer"} for i in range(30)]
    rows += [dict(rows[0]), dict(rows[1])]  # two exact copies
    rows += [
        {"text": "the exchange rate was wrong on my card payment today", "label": "change_pin"},
        {"text": "the exchange rate was wrong on my card payment today", "label": "transfer"},
    ]  # a label conflict
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config = TunerailConfig(task="classification", data={"format": "text_label"}, doctor={"semantic": False}, criteria={"threshold": 0.5})
    doctor(data, config, out_dir=tmp_path / "doctor", fix=True)
    found = {f.code for f in json_findings(tmp_path / "doctor")}
    assert "DOC010" in found
    left = {f.code for f in unresolved_doctor_findings(tmp_path / "doctor")}
    assert "DOC010" not in left
    assert found & {"DOC011", "DOC052"} and left & {"DOC011", "DOC052"}  # the conflict needs a person


def json_findings(doctor_dir: Path):
    from tunerail.findings import load_findings

    return load_findings(doctor_dir / "findings.json")


def _record_reads(config, monkeypatch) -> set[str]:
    """Every config field read through attribute access on ``config`` (dotted paths), from now on."""
    from pydantic import BaseModel

    paths: dict[int, str] = {}

    def walk(model: BaseModel, prefix: str) -> None:
        paths[id(model)] = prefix
        for name in type(model).model_fields:
            value = model.__dict__.get(name)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, BaseModel):
                    walk(item, f"{prefix}{name}.")

    walk(config, "")
    reads: set[str] = set()
    original = BaseModel.__getattribute__

    def spy(self, name):
        prefix = paths.get(id(self))
        if prefix is not None and name in type(self).model_fields:
            reads.add(prefix + name)
        return original(self, name)

    monkeypatch.setattr(BaseModel, "__getattribute__", spy)
    return reads


def _unkeyed(reads: set[str], step: str) -> list[str]:
    """The reads no STEP_READS entry of ``step`` covers (an entry covers what lies under it; reading a
    section object on the way to a keyed field is fine; ``source`` is the config file's own path,
    from which relative paths resolve, and the files themselves are hashed)."""
    from tunerail.pipeline import STEP_READS

    entries = STEP_READS[step]
    return sorted(r for r in reads if r != "source" and not any(r == e or r.startswith(e + ".") or e.startswith(r + ".") for e in entries))


def test_step_keys_hold_every_config_field_the_step_reads(tmp_path, monkeypatch):
    """Issue 13 §1: a step's cache key is taken from STEP_READS; a field the step reads but the key
    misses (split once read model.embedding_model unkeyed) would let a changed config reuse stale
    outputs. Run doctor, split and leakage as `run` does and check every read is in the key."""
    from tunerail.config import load_config
    from tunerail.doctor import doctor
    from tunerail.split import split
    from tunerail.split.leakage import leakage

    config = load_config(_project(tmp_path))
    reads = _record_reads(config, monkeypatch)
    doctor(tmp_path / "data.csv", config, out_dir=tmp_path / "doctor", fix=True)
    assert not _unkeyed(reads, "doctor"), f"doctor reads config fields its key misses: {_unkeyed(reads, 'doctor')}"
    reads.clear()
    result = split(tmp_path / "doctor" / "clean.jsonl", config, out_dir=tmp_path / "split")
    assert not _unkeyed(reads, "split"), f"split reads config fields its key misses: {_unkeyed(reads, 'split')}"
    reads.clear()
    leakage({k: result.paths[k] for k in ("train", "validation", "test")}, config=config, out_dir=tmp_path / "leakage")
    assert not _unkeyed(reads, "leakage"), f"leakage reads config fields its key misses: {_unkeyed(reads, 'leakage')}"


@pytest.mark.slow
def test_train_and_eval_keys_hold_every_config_field_they_read(tmp_path, monkeypatch):
    """The same for train and eval (tiny model): a read the key misses would reuse a stale adapter or verdict."""
    from tunerail.config import load_config
    from tunerail.eval import evaluate
    from tunerail.split import split
    from tunerail.train import train

    config = load_config(_project(tmp_path))
    result = split(tmp_path / "data.csv", config, out_dir=tmp_path / "split")
    reads = _record_reads(config, monkeypatch)

    trained = train(config, train_data=result.paths["train"], validation_data=result.paths["validation"], out_dir=tmp_path / "train")
    assert not _unkeyed(reads, "train"), f"train reads config fields its key misses: {_unkeyed(reads, 'train')}"
    reads.clear()
    evaluate(
        config,
        test_data=result.paths["test"],
        adapter_dir=trained.adapter_dir,
        out_dir=tmp_path / "eval",
        train_data=result.paths["train"],
        validation_data=result.paths["validation"],
        train_json=tmp_path / "train" / "train.json",
        split_json=result.split_json,
    )
    assert not _unkeyed(reads, "eval"), f"eval reads config fields its key misses: {_unkeyed(reads, 'eval')}"


@pytest.mark.slow
def test_lowering_the_threshold_after_a_not_ready_run_is_refused_by_run(tmp_path, capsys):
    """Issue 13 §1, as reported: after NOT READY, lowering criteria.threshold and re-running `tunerail run`
    must not re-split and flip the verdict. Exit 2 naming both values and the frozen hash; with
    --allow-criteria-change the run goes on, says so, and cannot be READY."""
    config = _project(tmp_path)
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out)]) == 1  # a random model: NOT READY
    frozen = json.loads((out / "split" / "split.json").read_text())
    cfg = json.loads(config.read_text())
    cfg["criteria"]["threshold"] = 0.0
    config.write_text(json.dumps(cfg))
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(out)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "criteria.threshold: 0.9 -> 0.0" in err and frozen["frozen"]["sha256"][:12] in err
    assert json.loads((out / "split" / "split.json").read_text()) == frozen  # nothing re-frozen
    assert main(["run", str(config), "--out", str(out), "--allow-criteria-change"]) == 1
    report = json.loads((out / "eval" / "report.json").read_text())
    assert report["verdict"] != "READY"
    assert any("criteria changed after the test set was frozen" in f["message"] for f in report["findings"] if f["severity"] == "error")


@pytest.mark.parametrize("stop_on, blocked", [("error", ["LEAK001"]), ("warning", ["DOC020", "LEAK001"]), ("never", [])])
def test_the_gate_blocks_leakage_errors_and_follows_stop_on(tmp_path, stop_on, blocked):
    """Issue 13 §1/§8: leakage errors block training like doctor errors; stop_on: warning also blocks
    unresolved warnings; a warning whose row --fix quarantined does not count."""
    from tunerail.data.records import RowRef
    from tunerail.findings import Finding, Severity
    from tunerail.gate import blocking_findings

    def dump(path: Path, findings: list[Finding]) -> None:
        path.write_text(json.dumps({"findings": [f.to_dict() for f in findings]}))

    doctor_dir = tmp_path / "doctor"
    doctor_dir.mkdir()
    dump(
        doctor_dir / "findings.json",
        [
            Finding("labels.conflict", Severity.WARNING, "m", "f", rows=[RowRef(3, 4)], code="DOC020"),
            Finding("format.empty", Severity.WARNING, "m", "f", rows=[RowRef(7, 8)], code="DOC002"),
            Finding("language.distribution", Severity.INFO, "m", "f", code="DOC044"),
        ],
    )
    (doctor_dir / "quarantine.jsonl").write_text(json.dumps({"_tunerail": {"index": 7, "reason": "empty"}}) + "\n")
    dump(tmp_path / "leakage.json", [Finding("leakage.exact", Severity.ERROR, "m", "f", rows=[RowRef(1, 2)], code="LEAK001")])
    found = blocking_findings(doctor_dir, tmp_path / "leakage.json", stop_on)
    assert sorted(f.code for f in found) == blocked


def test_doctor_warnings_on_many_rows_stop_the_run_until_acknowledged(tmp_path):
    """Issue 25 §5: 414 language warnings on 28 % of the rows went on to train unread. Warnings on more
    than pipeline.warning_share of the rows are one finding to acknowledge; the choice is in gate.json."""
    from types import SimpleNamespace

    from tunerail.data.records import RowRef
    from tunerail.errors import GuardrailError
    from tunerail.findings import Finding, Severity
    from tunerail.gate import gate

    doctor_dir = tmp_path / "doctor"
    doctor_dir.mkdir()
    warnings = [Finding("language.mismatch", Severity.WARNING, "m", "f", rows=[RowRef(i, i + 2)], code="DOC043") for i in range(0, 100, 4)]
    warnings.append(Finding("duplicates.exact", Severity.WARNING, "m", "f", rows=[RowRef(1, 3), RowRef(2, 4), RowRef(3, 5)], code="DOC010"))
    (doctor_dir / "findings.json").write_text(json.dumps({"findings": [f.to_dict() for f in warnings]}))
    (doctor_dir / "clean.jsonl").write_text('{"text": "x", "label": "a"}\n' * 97)  # rows 1-3 quarantined
    (doctor_dir / "quarantine.jsonl").write_text("".join(json.dumps({"_tunerail": {"index": i}}) + "\n" for i in (1, 2, 3)))
    leakage = tmp_path / "leakage.json"
    leakage.write_text(json.dumps({"findings": []}))

    pipeline = SimpleNamespace(stop_on="error", warning_share=0.1, acknowledge_warnings=False)
    with pytest.raises(GuardrailError) as err:
        gate(tmp_path, pipeline, leakage)
    message = " ".join(str(err.value).split())
    assert "25 of 97 training rows (26%) still carry doctor warnings" in message and "pipeline.acknowledge_warnings: true" in message
    assert not (tmp_path / "gate.json").exists()

    pipeline.acknowledge_warnings = True
    record = gate(tmp_path, pipeline, leakage)
    assert record["warnings_acknowledged"] and record["doctor_warning_rows"] == 25
    assert json.loads((tmp_path / "gate.json").read_text())["doctor_warning_share"] == round(25 / 97, 4)

    pipeline.acknowledge_warnings, pipeline.warning_share = False, 0.3  # under the share: no acknowledgement needed
    assert gate(tmp_path, pipeline, leakage)["warnings_acknowledged"] is False


def test_run_sweeps_by_default_and_records_a_switched_off_sweep():
    # `run` sweeps unless sweep.enabled is false (recorded in the train step) or there is no budget to take a share of.
    from tunerail.config import TunerailConfig
    from tunerail.pipeline import _sweep_skipped

    assert TunerailConfig().sweep.enabled is True
    assert _sweep_skipped(TunerailConfig.model_validate({"budget": {"max_hours": 0.25}})) is None  # sweeps
    off = _sweep_skipped(TunerailConfig.model_validate({"budget": {"max_hours": 0.25}, "sweep": {"enabled": False}}))
    assert off is not None and off["sweep.enabled"] is False and "sweep.enabled: false" in off["reason"]
    no_budget = _sweep_skipped(TunerailConfig())
    assert no_budget is not None and "budget.max_hours" in no_budget["reason"]
