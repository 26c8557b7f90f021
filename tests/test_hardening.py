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
