import csv
import json

import pytest

from tunerail.data import load_records
from tunerail.errors import DataError


def test_banking_csv_loads_as_text_label(banking_example):
    records, rejected, fmt = load_records(banking_example)
    assert fmt == "text_label"
    assert len(records) == 1500 and not rejected
    first = records[0]
    assert first.ref.index == 0 and first.ref.line == 2
    assert first.label == "card_payment_wrong_exchange_rate"


def test_jsonl_provenance_and_bad_lines(tmp_path):
    path = tmp_path / "chat.jsonl"
    lines = [
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}),
        "{not json",
        "",
        json.dumps({"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}),
        json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),
        json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}),
    ]
    path.write_text("\n".join(lines) + "\n")
    records, rejected, fmt = load_records(path)
    assert fmt == "chat"
    assert [(r.ref.index, r.ref.line) for r in records] == [(0, 1), (4, 6)]
    reasons = {(r.ref.index, r.ref.line): (r.check, r.field) for r in rejected}
    assert reasons == {
        (1, 2): ("format.unparseable", None),
        (2, 4): ("format.wrong_type", "messages[0].role"),
        (3, 5): ("format.wrong_type", "messages"),
    }
    assert len(records) + len(rejected) == 5  # rows in = kept + rejected


def test_json_array_lines_and_instruction_format(tmp_path):
    path = tmp_path / "alpaca.json"
    rows = [{"instruction": "Add", "input": "1 2", "output": "3"},
            {"instruction": "Say hi", "input": "", "output": ""}]
    path.write_text(json.dumps(rows, indent=2))
    records, rejected, fmt = load_records(path)
    assert fmt == "instruction"
    assert records[0].prompt == "Add\n\n1 2" and records[0].ref.line == 2
    assert rejected[0].field == "output" and rejected[0].ref.index == 1 and rejected[0].ref.line == 7


def test_csv_multiline_cells_keep_physical_lines(tmp_path):
    path = tmp_path / "pc.csv"
    with open(path, "w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["prompt", "completion"])
        w.writerow(["first\nspans two lines", "a"])
        w.writerow(["second", "b"])
    records, _, fmt = load_records(path)
    assert fmt == "prompt_completion"
    assert [r.ref.line for r in records] == [2, 4]


def test_parquet_and_datasets_folder(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    table = pa.table({"prompt": ["p1", "p2"], "completion": ["c1", "c2"]})
    pq.write_table(table, tmp_path / "d.parquet")
    records, _, _ = load_records(tmp_path / "d.parquet")
    assert [r.completion for r in records] == ["c1", "c2"]
    Dataset.from_dict({"text": ["a", "b"], "label": ["x", "y"]}).save_to_disk(str(tmp_path / "ds"))
    records, _, fmt = load_records(tmp_path / "ds")
    assert fmt == "text_label" and [r.label for r in records] == ["x", "y"]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_records(tmp_path / "nope.jsonl")


def test_undetectable_format_says_how_to_fix(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps({"foo": 1}) + "\n")
    with pytest.raises(DataError, match="data.format"):
        load_records(path)
