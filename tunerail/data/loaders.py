"""Streaming loaders for JSONL, JSON arrays, CSV/TSV, Parquet and `datasets` folders.

Provenance: ``index`` is the 0-based position among all records of the input file,
malformed ones included (for JSONL, line - 1 when there are no blank lines); ``line`` is the
1-based physical line where the record starts (for Parquet/`datasets`, index + 1).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Iterable

from tunerail.data.records import FORMATS, RawRow, Record, Rejection
from tunerail.errors import DataError, Problem
from tunerail.findings import RowRef

CHAT_ROLES = ("system", "user", "assistant", "tool", "function", "developer")

# Column names tried, in order, when the config does not map them.
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "messages": ("messages", "conversation", "conversations"),
    "instruction": ("instruction",),
    "input": ("input", "context"),
    "output": ("output", "response"),
    "prompt": ("prompt", "question", "query"),
    "completion": ("completion", "answer", "chosen"),
    "text": ("text", "sentence", "utterance", "query"),
    "label": ("label", "category", "intent", "class", "labels"),
}


def file_kind(path: Path) -> str:
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            return "hf_dataset"
        raise DataError(Problem("is a folder but not a Hugging Face dataset saved with save_to_disk", file=str(path),
                                fix="point to a data file (.jsonl/.json/.csv/.tsv/.parquet) or a save_to_disk folder"))
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    kinds = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
             ".parquet": "parquet", ".pq": "parquet", ".txt": "tsv"}
    if suffix not in kinds:
        raise DataError(Problem(f"unsupported file type {suffix!r}", file=str(path),
                                fix="use .jsonl, .json, .csv, .tsv, .parquet or a datasets save_to_disk folder"))
    return kinds[suffix]


def iter_raw_rows(path: str | Path) -> Iterator[RawRow]:
    """Yield every row of ``path`` with its provenance; unparseable rows carry ``error``.

    Streams JSONL, CSV/TSV and Parquet; a JSON array is parsed whole (its rows are located
    by character offset), which is fine for the sizes JSON arrays are used at.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(Problem("file not found", file=str(path), fix="check the path (relative paths are relative to the config file)"))
    kind = file_kind(path)
    name = str(path)
    reader = {"jsonl": _iter_jsonl, "json": _iter_json_array, "csv": _iter_csv, "tsv": _iter_csv,
              "parquet": _iter_parquet, "hf_dataset": _iter_hf_dataset}[kind]
    yield from reader(path, name, kind)


def _iter_jsonl(path: Path, name: str, kind: str) -> Iterator[RawRow]:
    index = 0
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            text = raw.decode("utf-8", errors="replace")
            if not text.strip():
                continue  # blank lines are not records
            ref = RowRef(index=index, line=line_no, file=name)
            index += 1
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                yield RawRow(ref, None, f"invalid JSON: {exc.msg} at column {exc.colno}")
                continue
            if not isinstance(data, dict):
                yield RawRow(ref, None, f"expected a JSON object, found {type(data).__name__}")
                continue
            yield RawRow(ref, data)


def _iter_json_array(path: Path, name: str, kind: str) -> Iterator[RawRow]:
    text = path.read_text(encoding="utf-8", errors="replace")
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if pos >= len(text):
        return
    if text[pos] != "[":
        # A single object per line saved as .json is common: fall back to JSONL.
        yield from _iter_jsonl(path, name, "jsonl")
        return
    pos = _skip_ws(text, pos + 1)
    index = 0
    line = text.count("\n", 0, pos) + 1
    last = pos
    while pos < len(text) and text[pos] != "]":
        line += text.count("\n", last, pos)
        last = pos
        ref = RowRef(index=index, line=line, file=name)
        index += 1
        try:
            data, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield RawRow(ref, None, f"invalid JSON: {exc.msg}")
            return  # the rest of an array cannot be located reliably
        if isinstance(data, dict):
            yield RawRow(ref, data)
        else:
            yield RawRow(ref, None, f"expected a JSON object, found {type(data).__name__}")
        pos = _skip_ws(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _iter_csv(path: Path, name: str, kind: str) -> Iterator[RawRow]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    delimiter = "\t" if kind == "tsv" else ","
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        header = [h.strip().lstrip("\ufeff") for h in header]
        index = 0
        start = reader.line_num + 1
        for cells in reader:
            ref = RowRef(index=index, line=start, file=name)
            start = reader.line_num + 1
            if not cells or all(not c.strip() for c in cells):
                continue
            index += 1
            if len(cells) != len(header):
                yield RawRow(ref, None, f"expected {len(header)} columns ({', '.join(header)}), found {len(cells)}")
                continue
            yield RawRow(ref, dict(zip(header, cells)))


def _iter_parquet(path: Path, name: str, kind: str) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    index = 0
    try:  # pyarrow raises ArrowInvalid (a ValueError) or ArrowIOError (an OSError) on a damaged file
        for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                yield RawRow(RowRef(index=index, line=index + 1, file=name), row)
                index += 1
    except (OSError, ValueError) as exc:
        raise DataError(Problem(f"is not a readable Parquet file after {index} rows ({type(exc).__name__}: {exc})",
                                file=name, fix="re-export the file (pyarrow/pandas to_parquet), or use JSONL/CSV")) from None


def _iter_hf_dataset(path: Path, name: str, kind: str) -> Iterator[RawRow]:
    from datasets import DatasetDict, load_from_disk

    index = 0
    try:  # a damaged folder fails in datasets/pyarrow with OSError, ValueError, KeyError or TypeError
        dataset = load_from_disk(str(path))
        if isinstance(dataset, DatasetDict):
            split = "train" if "train" in dataset else next(iter(dataset))
            dataset = dataset[split]
        for index, row in enumerate(dataset):
            yield RawRow(RowRef(index=index, line=index + 1, file=name), dict(row))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(Problem(f"is not a readable `datasets` save_to_disk folder ({type(exc).__name__}: {exc})",
                                file=name, fix="save it again with Dataset.save_to_disk, or export JSONL/Parquet")) from None


def _pick(data: Mapping[str, Any], role: str, columns: Mapping[str, str] | None) -> str | None:
    """Which column of ``data`` plays ``role``: the configured one, else the first default present."""
    if columns and columns.get(role):
        return columns[role]
    for candidate in DEFAULT_COLUMNS[role]:
        if candidate in data:
            return candidate
    return None


def detect_format(rows: Iterable[Mapping[str, Any]], columns: Mapping[str, str] | None = None) -> str:
    """Guess the format from the keys of the first parseable rows."""
    for data in rows:
        if _pick(data, "messages", columns) in data:
            return "chat"
        if _pick(data, "instruction", columns) in data and _pick(data, "output", columns) in data:
            return "instruction"
        if _pick(data, "prompt", columns) in data and _pick(data, "completion", columns) in data:
            return "prompt_completion"
        if _pick(data, "text", columns) in data and _pick(data, "label", columns) in data:
            return "text_label"
    raise DataError(Problem(
        "could not detect the data format from the columns",
        fix="name the format in the config (data.format: chat|instruction|prompt_completion|text_label) "
            "and map the columns (data.columns)"))


def to_record(raw: RawRow, fmt: str, columns: Mapping[str, str] | None = None,
              group_column: str | None = None) -> Record | Rejection:
    """Convert a raw row to a ``Record``, or say precisely why it cannot be one."""
    if raw.data is None:
        return Rejection(raw.ref, raw.error or "unparseable row", check="format.unparseable")
    data = raw.data
    group = None
    if group_column:
        value = data.get(group_column)
        group = None if value is None else str(value)
    try:
        if fmt == "chat":
            return _chat_record(raw, data, columns, group)
        if fmt == "instruction":
            instruction = _text_field(data, _pick(data, "instruction", columns) or "instruction", raw)
            input_col = _pick(data, "input", columns)
            extra = data.get(input_col) if input_col else None
            if extra is not None and not isinstance(extra, str):
                raise _Reject("must be a string", input_col, f"found {type(extra).__name__}")
            output = _text_field(data, _pick(data, "output", columns) or "output", raw)
            prompt = instruction if not extra or not extra.strip() else f"{instruction}\n\n{extra}"
            return Record(raw.ref, "instruction", [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}],
                          prompt, output, None, group, dict(data))
        if fmt == "prompt_completion":
            prompt = _text_field(data, _pick(data, "prompt", columns) or "prompt", raw)
            completion = _text_field(data, _pick(data, "completion", columns) or "completion", raw)
            return Record(raw.ref, "prompt_completion", [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}],
                          prompt, completion, None, group, dict(data))
        if fmt == "text_label":
            text = _text_field(data, _pick(data, "text", columns) or "text", raw)
            label_col = _pick(data, "label", columns) or "label"
            label = data.get(label_col)
            if label is None or (isinstance(label, str) and not label.strip()):
                raise _Reject("is missing or empty", label_col)
            if isinstance(label, (list, dict)):
                raise _Reject("must be a single label", label_col, f"found {type(label).__name__}")
            label = str(label).strip()
            return Record(raw.ref, "text_label", [{"role": "user", "content": text}, {"role": "assistant", "content": label}],
                          text, label, label, group, dict(data))
    except _Reject as rej:
        reason = f"field '{rej.field}' {rej.what}" + (f" ({rej.detail})" if rej.detail else "")
        check = "format.missing_field" if "missing" in rej.what or "empty" in rej.what else "format.wrong_type"
        return Rejection(raw.ref, reason, field=rej.field, data=data, check=check)
    raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")


class _Reject(Exception):
    def __init__(self, what: str, field: str | None, detail: str = ""):
        self.what, self.field, self.detail = what, field, detail


def _text_field(data: Mapping[str, Any], name: str, raw: RawRow) -> str:
    if name not in data or data[name] is None:
        raise _Reject("is missing", name)
    value = data[name]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _Reject("must be a string", name, f"found {type(value).__name__}")
    if not value.strip():
        raise _Reject("is empty", name)
    return value


def _chat_record(raw: RawRow, data: Mapping[str, Any], columns: Mapping[str, str] | None, group: str | None) -> Record:
    name = _pick(data, "messages", columns) or "messages"
    messages = data.get(name)
    if messages is None:
        raise _Reject("is missing", name)
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError:
            raise _Reject("must be a list of messages", name, "found a string that is not JSON") from None
    if not isinstance(messages, list) or not messages:
        raise _Reject("must be a non-empty list of {role, content} messages", name)
    turns: list[dict[str, str]] = []
    for i, msg in enumerate(messages):
        where = f"{name}[{i}]"
        if not isinstance(msg, dict):
            raise _Reject("must be an object with role and content", where)
        role = msg.get("role", msg.get("from"))
        content = msg.get("content", msg.get("value"))
        role = {"human": "user", "gpt": "assistant"}.get(role, role)
        if role not in CHAT_ROLES:
            raise _Reject(f"has unknown role {role!r}", f"{where}.role", f"allowed: {', '.join(CHAT_ROLES)}")
        if content is None:
            raise _Reject("is missing", f"{where}.content")
        if not isinstance(content, str):
            raise _Reject("must be a string", f"{where}.content", f"found {type(content).__name__}")
        turns.append({"role": role, "content": content})
    last_assistant = max((i for i, t in enumerate(turns) if t["role"] == "assistant"), default=None)
    if last_assistant is None:
        raise _Reject("has no assistant turn", name, "nothing to learn from")
    if not turns[last_assistant]["content"].strip():
        raise _Reject("is empty", f"{name}[{last_assistant}].content", "the assistant answer")
    prompt = "\n".join(t["content"] for t in turns[:last_assistant])
    return Record(raw.ref, "chat", turns, prompt, turns[last_assistant]["content"], None, group, dict(data))


def load_records(path: str | Path, fmt: str = "auto", columns: Mapping[str, str] | None = None,
                 group_column: str | None = None) -> tuple[list[Record], list[Rejection], str]:
    """Load every row of ``path``: the records, the rejected rows (with reasons) and the format.

    Rows in = len(records) + len(rejections), always.
    """
    records: list[Record] = []
    rejections: list[Rejection] = []
    rows = iter_raw_rows(path)
    buffered: list[RawRow] = []
    if fmt == "auto":
        for raw in rows:
            buffered.append(raw)
            if sum(r.data is not None for r in buffered) >= 20:
                break
        fmt = detect_format((r.data for r in buffered if r.data is not None), columns)
    elif fmt not in FORMATS:
        raise DataError(Problem(f"unknown format {fmt!r}", field="data.format", fix=f"use one of: auto, {', '.join(FORMATS)}"))
    wanted = {c for c in [*(columns or {}).values(), group_column] if c}  # named by the user: must exist
    found: set[str] = set()
    first_keys: list[str] | None = None
    for raw in _chain(buffered, rows):
        if raw.data is not None and wanted:
            found.update(c for c in wanted if c in raw.data)
            first_keys = first_keys if first_keys is not None else [str(k) for k in raw.data]
        item = to_record(raw, fmt, columns, group_column)
        (records if isinstance(item, Record) else rejections).append(item)
    if first_keys is not None and wanted - found:
        raise missing_columns_error(path, sorted(wanted - found), first_keys, columns or {}, group_column)
    return records, rejections, fmt


def missing_columns_error(path: str | Path, missing: list[str], seen: list[str], columns: Mapping[str, str],
                          group_column: str | None) -> DataError:
    """A column named in the config that no row has: a typo in data.group_column would let groups straddle splits."""
    import difflib

    problems = []
    for name in missing:
        key = "data.group_column" if name == group_column else \
            "data.columns." + next(role for role, col in columns.items() if col == name)
        close = difflib.get_close_matches(name, seen, n=1)
        problems.append(Problem(f"column {name!r} ({key}) is in no row; columns seen: {', '.join(seen[:20])}",
                                file=str(path), field=key,
                                fix=(f"did you mean {close[0]!r}? " if close else "") + "fix the name in the config"))
    return DataError(problems)


def _chain(first: list[RawRow], rest: Iterator[RawRow]) -> Iterator[RawRow]:
    yield from first
    yield from rest
