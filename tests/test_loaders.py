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
    rows = [{"instruction": "Add", "input": "1 2", "output": "3"}, {"instruction": "Say hi", "input": "", "output": ""}]
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


# --- issue 13 §3: no row lost quietly, encodings, specific "cannot read" messages ---------------


def _rows(n):
    return [{"prompt": f"question number {i}", "completion": f"answer {i}"} for i in range(n)]


def test_json_array_bad_element_keeps_every_later_row(tmp_path):
    path = tmp_path / "arr.json"
    parts = [json.dumps(r, indent=2) for r in _rows(61)]
    parts[30] = '{\n  "prompt": "broken",\n  "completion": "trailing comma",\n}'
    path.write_text("[\n" + ",\n".join(parts) + "\n]\n")
    records, rejected, _ = load_records(path)
    assert len(records) == 60 and len(rejected) == 1
    bad = rejected[0]
    assert bad.ref.index == 30 and "array element 30" in bad.reason
    assert bad.ref.line == 1 + 30 * 4 + 1  # each element spans 4 lines after the opening bracket
    assert [r.completion for r in records][30:32] == ["answer 31", "answer 32"]


def test_json_array_unlocatable_rest_stops_with_the_position(tmp_path):
    path = tmp_path / "arr.json"
    parts = [json.dumps(r) for r in _rows(5)]
    parts[2] = '{"prompt": "unterminated [ bracket", "completion": {"x": [1, 2}'
    path.write_text("[\n" + ",\n".join(parts) + "\n]\n")
    with pytest.raises(DataError, match=r"array element 2 \(line 4\).*would be lost"):
        load_records(path)


def test_truncated_json_array_is_refused(tmp_path):
    path = tmp_path / "arr.json"
    path.write_text("[" + ",".join(json.dumps(r) for r in _rows(3)))
    with pytest.raises(DataError, match="not closed"):
        load_records(path)


def test_utf8_bom_does_not_quarantine_the_first_jsonl_row(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(json.dumps(r) for r in _rows(3)).encode() + b"\n")
    records, rejected, fmt = load_records(path)
    assert fmt == "prompt_completion" and len(records) == 3 and not rejected


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_utf16_files_decode(tmp_path, suffix):
    from tunerail.data.encoding import detect_encoding

    path = tmp_path / f"u16.{suffix}"
    if suffix == "jsonl":
        text = "\n".join(json.dumps(r, ensure_ascii=False) for r in [{"text": "Grüße aus Köln", "label": "de"}]) + "\n"
    else:
        text = "text,label\r\nGrüße aus Köln,de\r\n"
    path.write_bytes(text.encode("utf-16"))  # with BOM, as Excel's "Unicode text" writes it
    records, rejected, _ = load_records(path)
    assert not rejected and records[0].prompt == "Grüße aus Köln"
    assert detect_encoding(path).name == "utf-16"


def test_latin1_csv_is_decoded_not_replaced(tmp_path):
    from tunerail.data.encoding import detect_encoding

    path = tmp_path / "latin1.csv"
    rows = ["text,label"] + [f"Le café numéro {i} est fermé à midi,fr" for i in range(40)]
    path.write_bytes("\n".join(rows).encode("latin-1"))
    records, rejected, _ = load_records(path)
    assert not rejected and records[0].prompt == "Le café numéro 0 est fermé à midi"
    assert not any("\ufffd" in r.prompt for r in records)
    enc = detect_encoding(path)
    assert enc.how == "detected" and enc.name in ("cp1252", "latin_1", "iso8859-15", "cp1250")


def test_binary_file_is_named_as_binary(tmp_path):
    import random

    path = tmp_path / "data.jsonl"
    rng = random.Random(0)
    path.write_bytes(bytes(rng.randrange(256) for _ in range(4000)))
    with pytest.raises(DataError, match="binary"):
        load_records(path)
    pq_named_csv = tmp_path / "data.csv"
    pq_named_csv.write_bytes(b"PAR1" + b"\x00" * 100)
    with pytest.raises(DataError, match="Parquet"):
        load_records(pq_named_csv)


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("empty.jsonl", "", "is empty"),
        ("header.csv", "text,label\n", r"header \(text, label\) but no rows"),
        ("blank.jsonl", "\n\n", "only blank lines"),
        ("obj.json", json.dumps({"version": 2, "data": _rows(3)}), "single top-level JSON object.*under 'data' \\(3 items\\)"),
        ("cols.jsonl", json.dumps({"questoin": "a", "anwser": "b"}) + "\n", "columns seen: questoin, anwser; expected one of"),
        (
            "mixed.jsonl",
            json.dumps({"text": "a", "label": "b"}) + "\n" + json.dumps({"prompt": "a", "completion": "b"}) + "\n",
            r"mixes data formats.*text_label \(text \+ label\) from row 1, prompt_completion \(prompt \+ completion\) from row 2",
        ),
        ("garbage.jsonl", "not json\nalso not\n", "none of its first 2 rows could be parsed"),
    ],
)
def test_unreadable_files_say_which_problem(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        load_records(path)
    assert str(path) in str(info.value)  # the file is named
    assert "could not detect the data format" not in str(info.value) or name == "cols.jsonl"


def test_single_json_object_with_data_columns_is_one_row(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"prompt": "p", "completion": "c"}, indent=2))
    records, rejected, _ = load_records(path)
    assert [r.completion for r in records] == ["c"] and not rejected


def test_doctor_names_a_detected_encoding_and_writes_clean_utf8(tmp_path):
    import tunerail

    path = tmp_path / "latin1.csv"
    rows = ["text,label"] + [f"Le café numéro {i} est fermé à midi,{'ab'[i % 2]}" for i in range(40)]
    path.write_bytes("\n".join(rows).encode("latin-1"))
    result = tunerail.doctor(path, semantic=False, fix=True, out_dir=tmp_path / "out")
    enc = [f for f in result.findings if f.check == "format.encoding"]
    assert len(enc) == 1 and enc[0].severity == "warning" and "cp1252" in enc[0].message
    clean = (tmp_path / "out" / "clean.jsonl").read_text(encoding="utf-8")
    assert "café" in clean and "\ufffd" not in clean
