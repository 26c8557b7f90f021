"""Bad inputs a careless user or hostile data produce: each is a clear message and exit 2, never a traceback."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tunerail.cli import main
from tunerail.data import load_records
from tunerail.errors import DataError


def _csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _err(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())  # rich wraps long lines


def test_mistyped_group_column_or_mapped_column_stops_at_load(tmp_path):
    data = _csv(tmp_path / "d.csv", [{"text": f"row {i}", "label": "a", "conversation": str(i // 2)} for i in range(10)])
    with pytest.raises(DataError) as info:
        load_records(data, "text_label", {}, "conversaton")
    problem = info.value.problems[0]
    assert problem.field == "data.group_column" and problem.file == str(data)
    assert "columns seen: text, label, conversation" in problem.message and "'conversation'" in problem.fix
    with pytest.raises(DataError, match="data.columns.label"):
        load_records(data, "text_label", {"text": "text", "label": "intent"}, None)
    records, _, _ = load_records(data, "text_label", {}, "conversation")
    assert records[0].group == "0"


def _doctor(capsys, path: Path, *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["doctor", str(path), "--no-semantic", *extra])
    return code, _err(capsys)


def test_corrupt_parquet_and_datasets_folder_are_exit_2_with_the_file(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"text": [f"row {i}" for i in range(50)], "label": ["a"] * 50}), good)
    bad = tmp_path / "bad.parquet"
    blob = good.read_bytes()
    bad.write_bytes(blob[:4] + b"\0" * 64 + blob[68:])  # damaged pages, intact footer magic
    code, err = _doctor(capsys, bad)
    assert code == 2 and "Traceback" not in err and str(bad) in err and "Parquet" in err

    from datasets import Dataset

    folder = tmp_path / "ds"
    Dataset.from_dict({"text": ["a", "b"], "label": ["x", "y"]}).save_to_disk(str(folder))
    for arrow in folder.glob("*.arrow"):
        arrow.write_bytes(b"not arrow at all")
    code, err = _doctor(capsys, folder)
    assert code == 2 and "Traceback" not in err and str(folder) in err and "datasets" in err


def test_unexpected_exception_is_one_line_with_log_and_exit_2(tmp_path, capsys, monkeypatch):
    import tunerail.doctor

    monkeypatch.setenv("TUNERAIL_CACHE", str(tmp_path / "cache"))

    def boom(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(tunerail.doctor, "doctor", boom)
    data = _csv(tmp_path / "d.csv", [{"text": "a", "label": "b"}])
    code, err = _doctor(capsys, data)
    logs = list((tmp_path / "cache" / "logs").glob("*.log"))
    assert code == 2 and "Traceback" not in err and "ZeroDivisionError" in err and str(data) in err
    assert logs and "Traceback" in logs[0].read_text() and str(logs[0]) in err


def _banking(tmp_path: Path, banking_example: Path, n: int = 120) -> Path:
    with open(banking_example, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[:n]
    return _csv(tmp_path / "bank.csv", rows)


def test_doctor_out_that_is_a_file_is_refused_before_the_audit(tmp_path, capsys, monkeypatch, banking_example):
    import tunerail.doctor.recipe as recipe

    data = _banking(tmp_path, banking_example)
    target = tmp_path / "report.txt"
    target.write_text("mine")
    audited = []
    monkeypatch.setattr(recipe, "load_records", lambda *a, **k: audited.append(1) or (_ for _ in ()).throw(AssertionError))
    code, err = _doctor(capsys, data, "--out", str(target))
    assert code == 2 and "is an existing file" in err and str(target) in err and not audited
    assert target.read_text() == "mine"


def test_interrupted_doctor_fix_leaves_the_previous_outputs_whole(tmp_path, capsys, monkeypatch, banking_example):
    import tunerail.doctor.recipe as report  # the recipe imports write_report at module level

    data = _banking(tmp_path, banking_example)
    out = tmp_path / "out"
    assert _doctor(capsys, data, "--out", str(out))[0] in (0, 1)  # first run: no --fix
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "clean.jsonl" not in before
    with open(data, "a", encoding="utf-8") as handle:
        handle.write("a new row that changes the findings,card_arrival\n")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the user presses Ctrl-C while the report renders

    monkeypatch.setattr(report, "write_report", killed)
    assert _doctor(capsys, data, "--out", str(out), "--fix")[0] == 130
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no new findings beside the old report
    assert not list(tmp_path.glob(".out.*.partial"))
    monkeypatch.undo()
    assert _doctor(capsys, data, "--out", str(out), "--fix")[0] in (0, 1)
    assert {"clean.jsonl", "quarantine.jsonl", "run.json"} <= {p.name for p in out.iterdir()}
    assert not (out / ".tunerail-incomplete").exists()


def test_two_runs_into_one_folder_are_refused(tmp_path, capsys, banking_example):
    from filelock import FileLock

    data = _banking(tmp_path, banking_example)
    out = tmp_path / "out"
    with FileLock(str(tmp_path / ".out.lock")):  # another run holds the folder
        code, err = _doctor(capsys, data, "--out", str(out))
    assert code == 2 and "another tunerail run is writing into this folder" in err


def test_corrupt_split_json_is_exit_2_for_eval_verify_and_split(tmp_path, capsys, banking_example):
    data = _banking(tmp_path, banking_example, 400)
    cfg = tmp_path / "tunerail.yaml"
    cfg.write_text(
        "task: classification\n"
        f"data: {{path: {data}, format: text_label, columns: {{text: text, label: category}}}}\n"
        "criteria: {margin: 0.2, threshold: 0.5}\nsplit: {semantic: false}\nstore: {path: store}\n"
    )
    out = tmp_path / "split"
    assert main(["split", "-c", str(cfg), "-o", str(out)]) == 0
    (out / "split.json").write_text('{"frozen": {"file": "test.jsonl", "sha2')
    capsys.readouterr()
    assert main(["verify", str(out)]) == 2
    err = _err(capsys)
    assert "split manifest is not valid JSON" in err and str(out / "split.json") in err and "Traceback" not in err
    from tunerail.split import verify_frozen_split
    from tunerail.errors import TunerailError

    with pytest.raises(TunerailError, match="not valid JSON"):
        verify_frozen_split(out)
    assert main(["split", "-c", str(cfg), "-o", str(out)]) == 2  # never silently re-frozen over a damaged record
    assert "cannot be read" in _err(capsys)


def _review_file(tmp_path: Path, suffix: str) -> Path:
    from tunerail.review import ReviewRow, export_for_review

    rows = [
        ReviewRow(k, k + 1, f"Où est ma carte n° {k} ?", "réponse", "base answer – café", "tuned answer “ok”", 0.0, 1.0) for k in range(4)
    ]
    return export_for_review(rows, tmp_path / f"review{suffix}")


def test_review_import_of_a_cp1252_csv_reads_the_ratings(tmp_path, capsys):
    path = _review_file(tmp_path, ".csv")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["rating_a"], row["rating_b"], row["comment"] = "4", "2", "très bien – “clair”"
    with open(path, "w", newline="", encoding="cp1252") as handle:  # what Excel on Windows saves
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    capsys.readouterr()
    assert main(["review", "import", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rated"] == 4 and summary["ratings"] == {"base": 4, "tuned": 4}


def test_review_import_of_a_jsonl_with_one_bad_line_names_it(tmp_path, capsys):
    path = _review_file(tmp_path, ".jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2][:-5]  # a rater's editor cut the line
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["review", "import", str(path)]) == 2
    err = _err(capsys)
    assert f"{path}:3" in err and "not valid JSON" in err and "Traceback" not in err


def test_train_with_prompts_empty_is_exit_2_naming_the_key(tmp_path, capsys):
    cfg = tmp_path / "tunerail.yaml"
    cfg.write_text("task: classification\nprompts: []\n")
    capsys.readouterr()
    assert main(["train", "-c", str(cfg)]) == 2
    err = _err(capsys)
    assert f"{cfg}:2 [prompts]" in err and "at least 1" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["split", "train", "eval"])
def test_out_that_is_an_existing_file_is_refused_first(tmp_path, capsys, command, banking_example):
    target = tmp_path / "taken"
    target.write_text("mine")
    data = _banking(tmp_path, banking_example)
    argv = {"split": ["split", str(data)], "train": ["train", "--train", str(data)], "eval": ["eval", "--test", str(data)]}[command]
    capsys.readouterr()
    assert main([*argv, "--out", str(target)]) == 2
    err = _err(capsys)
    assert "is an existing file" in err and str(target) in err and target.read_text() == "mine"


def test_inference_device_is_chosen_in_one_place(monkeypatch):
    """Eval models and the embedding encoder go where ``compute_device`` says (the GPU when there is one)."""
    import tunerail.models as models
    from tunerail.eval import generate as G
    from train_tiny import tiny_model_dir

    monkeypatch.setenv("TUNERAIL_DEVICE", "cpu")
    assert models.compute_device() == "cpu"
    monkeypatch.delenv("TUNERAIL_DEVICE")
    import torch

    assert models.compute_device() == ("cuda" if torch.cuda.is_available() else models.compute_device())
    monkeypatch.setattr(models, "compute_device", lambda: "meta")  # a device with no data: proves the placement
    lm = G.load_model(str(tiny_model_dir()))
    assert lm.model.device.type == "meta"


class _Payload:
    """Pickles to a call of os.mkdir: what a hostile checkpoint would do on a full unpickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.mkdir, (str(self.marker),)


def test_resume_never_runs_code_from_a_checkpoint(tmp_path):
    import torch

    from train_tiny import banking_rows, tiny_config, write_jsonl
    from tunerail.errors import TunerailError
    from tunerail.train import train

    out = tmp_path / "run"
    folder = out / "checkpoints" / "state-step-000005"
    folder.mkdir(parents=True)
    marker = tmp_path / "code-ran"
    torch.save({"step": 5, "payload": _Payload(marker)}, folder / "trainer_state.pt")
    (out / "checkpoints" / "latest.json").write_text(json.dumps({"dir": folder.name, "step": 5}))
    train_data = write_jsonl(tmp_path / "train.jsonl", banking_rows(32))
    val = write_jsonl(tmp_path / "val.jsonl", banking_rows(8, offset=500))
    with pytest.raises(TunerailError, match="refusing to load it"):
        train(tiny_config(tmp_path), train_data=train_data, validation_data=val, out_dir=out, resume=True)
    assert not marker.exists()


def test_fail_on_is_one_enum_for_every_command(capsys):
    from tunerail.cli._common import FailOn

    for command in ("doctor", "leakage"):
        args = ["x.jsonl", "y.jsonl"] if command == "leakage" else ["x.jsonl"]
        assert main([command, *args, "--fail-on", "bogus"]) == 2
        assert "'bogus' is not one of" in _err(capsys)
    assert [m.value for m in FailOn] == ["error", "warning", "info"]


def test_severity_orders_by_rank_in_every_comparison_and_in_max():
    """Issue 13 §7: a str enum compares as strings ("warning" > "error"); Severity must order by rank."""
    from tunerail.findings import Severity

    info, warning, error = Severity.INFO, Severity.WARNING, Severity.ERROR
    assert info < warning < error and error > warning > info
    assert warning <= warning and warning >= "warning" and error > "warning"
    assert max([warning, error, info]) is error and min([error, info, warning]) is info
    assert sorted([error, info, warning]) == [info, warning, error]
    assert not warning > error and "warning" > "error"  # as plain strings they compare the wrong way


def test_one_renderer_and_one_ci_formula_in_the_package():
    """Issue 13 §7: chat templates are applied only in tunerail/prompting.py and interval maths lives
    only in tunerail/stats.py; a step that calls them directly renders or sizes differently."""
    import re

    import tunerail

    root = Path(tunerail.__file__).parent
    rules = {r"apply_chat_template\(": "prompting.py", r"\bnorm\.ppf\(|proportion_confint\(|p \* \(1 - p\)|\b1\.96\b|1\.959964": "stats.py"}
    for pattern, home in rules.items():
        rx = re.compile(pattern)
        users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if rx.search(p.read_text(encoding="utf-8")))
        assert users in ([home], []), f"{pattern!r} outside {home}: {users}"


def test_staged_outputs_replace_and_remove_folders_of_an_earlier_run(tmp_path):
    # `tunerail export --format gguf` into a run whose export/ already held merged/ and adapter/ folders failed with
    # IsADirectoryError (an owned folder this run did not write was unlinked as a file), and a folder written
    # again could not replace its non-empty predecessor.
    from tunerail.io import staged_outputs

    out = tmp_path / "export"
    owned = ("merged", "adapter", "gguf", "export.json")
    with staged_outputs(out, owned=owned) as tmp:
        for name in ("merged", "adapter"):
            (tmp / name).mkdir()
            (tmp / name / "weights").write_text(f"{name} 1")
        (tmp / "export.json").write_text('{"formats": ["merged", "adapter"]}')
    with staged_outputs(out, owned=owned) as tmp:  # the second export: gguf only, merged written again
        for name in ("merged", "gguf"):
            (tmp / name).mkdir()
            (tmp / name / "weights").write_text(f"{name} 2")
        (tmp / "export.json").write_text('{"formats": ["merged", "gguf"]}')
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "gguf", "merged"]
    assert (out / "merged" / "weights").read_text() == "merged 2" and (out / "gguf" / "weights").read_text() == "gguf 2"
    assert not [p for p in tmp_path.glob(".export.*") if p.suffix != ".lock"]  # no swapped-out folder or partial left beside it
