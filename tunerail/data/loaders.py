"""Streaming loaders for JSONL, JSON arrays, CSV/TSV, Parquet and `datasets` folders.

Provenance: ``index`` is the 0-based position among all records of the input file,
malformed ones included (for JSONL, line - 1 when there are no blank lines); ``line`` is the
1-based physical line where the record starts (for Parquet/`datasets`, index + 1).
"""

from __future__ import annotations

import csv
import difflib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tunerail.data.csv_rows import iter_csv_rows
from tunerail.data.encoding import decode_error, open_text
from tunerail.data.hub import HubSource, as_source, open_dataset
from tunerail.data.json_values import checked, loads_row, raw_decode
from tunerail.data.layout import DEFAULT_COLUMNS, detect_format, to_record
from tunerail.data.records import FORMATS, RawRow, Record, Rejection
from tunerail.errors import DataError, Problem
from tunerail.data.records import RowRef


def file_kind(path: Path) -> str:
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            return "hf_dataset"
        raise DataError(
            Problem(
                "is a folder but not a Hugging Face dataset saved with save_to_disk",
                file=str(path),
                fix="point to a data file (.jsonl/.json/.csv/.tsv/.parquet) or a save_to_disk folder",
            )
        )
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    kinds = {
        ".jsonl": "jsonl",
        ".ndjson": "jsonl",
        ".json": "json",
        ".csv": "csv",
        ".tsv": "tsv",
        ".parquet": "parquet",
        ".pq": "parquet",
        ".txt": "tsv",
    }
    if suffix not in kinds:
        raise DataError(
            Problem(
                f"unsupported file type {suffix!r}",
                file=str(path),
                fix="use .jsonl, .json, .csv, .tsv, .parquet or a datasets save_to_disk folder",
            )
        )
    return kinds[suffix]


def iter_raw_rows(path: str | Path | HubSource) -> Iterator[RawRow]:
    """Yield every row of ``path`` with its provenance; unparseable rows carry ``error``.

    Streams JSONL, CSV/TSV and Parquet; a JSON array is parsed whole (its rows are located
    by character offset), which is fine for the sizes JSON arrays are used at. A Hub dataset
    (a ``HubSource``, or an ``owner/name`` path that does not exist locally) is read like a
    ``save_to_disk`` folder.
    """
    source = as_source(path)
    if isinstance(source, HubSource):
        yield from _dataset_rows(open_dataset(source)[0], str(source))
        return
    path = source
    if not path.exists():
        raise DataError(Problem("file not found", file=str(path), fix="check the path (relative paths are relative to the config file)"))
    kind = file_kind(path)
    name = str(path)
    reader = {
        "jsonl": _iter_jsonl,
        "json": _iter_json_array,
        "csv": _iter_csv,
        "tsv": _iter_csv,
        "parquet": _iter_parquet,
        "hf_dataset": _iter_hf_dataset,
    }[kind]
    yield from reader(path, name, kind)


def _iter_jsonl(path: Path, name: str, kind: str) -> Iterator[RawRow]:
    index = 0
    line_no = 0
    with open_text(path, "\n") as handle:  # lines end at \n only, as physical lines do
        try:
            for line_no, text in enumerate(handle, start=1):
                if not text.strip():
                    continue  # blank lines are not records
                ref = RowRef(index=index, line=line_no, file=name)
                index += 1
                data, error, field = loads_row(text)
                if error is not None:
                    yield RawRow(ref, None, error, field)
                    continue
                if not isinstance(data, dict):
                    yield RawRow(ref, None, f"expected a JSON object, found {type(data).__name__}")
                    continue
                yield RawRow(ref, data)
        except UnicodeDecodeError as exc:
            raise decode_error(name, line_no + 1, exc) from None


def _iter_json_array(path: Path, name: str, kind: str) -> Iterator[RawRow]:
    """The elements of a JSON array; after a malformed element, parsing resumes at the next one.

    A bad element becomes an unparseable row at its position; when the next element cannot be
    located, the file is refused (``DataError``) rather than rows being dropped quietly.
    """
    with open_text(path, "") as handle:
        try:
            text = handle.read()
        except UnicodeDecodeError as exc:
            raise decode_error(name, 0, exc) from None
    pos = _skip_ws(text, 0)
    if pos >= len(text):
        return
    if text[pos] == "{" and (single := _single_object(text, pos, name)) is not None:
        data, error, field = checked(single)
        yield RawRow(RowRef(0, text.count("\n", 0, pos) + 1, name), data, error, field)
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
            data, end = raw_decode(text, pos)
            after = _skip_ws(text, end)
            if after < len(text) and text[after] not in ",]":
                raise json.JSONDecodeError("expected ',' or ']' after the element", text, after)
        except json.JSONDecodeError as exc:
            column = exc.pos - text.rfind("\n", 0, exc.pos)
            yield RawRow(ref, None, f"invalid JSON in array element {ref.index}: {exc.msg} (line {exc.lineno}, column {column})")
            resume = _next_element(text, pos)
            if resume is None:
                tail = text.rstrip()
                if tail.endswith("]") and not _ANOTHER_ELEMENT.search(text, pos + 1, len(tail) - 1):
                    return  # the bad element was the last one
                raise DataError(
                    Problem(
                        f"invalid JSON in array element {ref.index} (line {exc.lineno}): {exc.msg}; "
                        "the elements after it cannot be located, so they would be lost",
                        file=name,
                        line=exc.lineno,
                        fix="repair the JSON at that line (or save the data as JSON Lines, one object per line)",
                    )
                ) from None
            pos = resume
            continue
        data, error, field = checked(data)
        if error is not None:
            yield RawRow(ref, None, error, field)
        elif isinstance(data, dict):
            yield RawRow(ref, data)
        else:
            yield RawRow(ref, None, f"expected a JSON object, found {type(data).__name__}")
        pos = after
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
    if pos >= len(text):
        raise DataError(
            Problem(
                f"the JSON array is not closed (no ']' after element {index - 1})",
                file=name,
                fix="the file may be truncated: check that it was written completely",
            )
        )


_ANOTHER_ELEMENT = re.compile(r",\s*[{\[]")


def _next_element(text: str, start: int) -> int | None:
    """Where the element after the malformed one at ``start`` begins, or None.

    Scans at array depth, tracking strings (a raw newline closes a broken string, since JSON
    strings cannot hold one); a candidate counts only when it parses and is followed by ``,``
    or by the final ``]``.
    """
    depth, in_string, escaped = 0, False, False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"' or ch == "\n":
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            candidate = _skip_ws(text, i + 1)
            if _element_fits(text, candidate):
                return candidate
    return None


def _element_fits(text: str, pos: int) -> bool:
    try:
        _, end = raw_decode(text, pos)
    except json.JSONDecodeError:
        return False
    after = _skip_ws(text, end)
    if after < len(text) and text[after] == ",":
        return True
    return after < len(text) and text[after] == "]" and _skip_ws(text, after + 1) >= len(text)


def _single_object(text: str, pos: int, name: str) -> dict[str, Any] | None:
    """A .json file holding exactly one object: one row when it has data columns, else refused.

    ``{"data": [...]}`` is not a list of rows: the error says where the rows seem to be.
    None when the text is not a single object (JSON Lines saved as .json).
    """
    try:
        data, end = raw_decode(text, pos)
    except json.JSONDecodeError:
        return None  # not one object: maybe JSON Lines
    if _skip_ws(text, end) < len(text) or not isinstance(data, dict):
        return None  # several objects: JSON Lines
    lists = [
        key
        for key, value in data.items()
        if isinstance(value, list) and value and isinstance(value[0], dict) and key not in DEFAULT_COLUMNS["messages"]
    ]
    where = f"; the rows seem to be the list under {lists[0]!r} ({len(data[lists[0]])} items)" if lists else ""
    if not lists and any(k in data for roles in DEFAULT_COLUMNS.values() for k in roles):
        return data
    raise DataError(
        Problem(
            f"is a single top-level JSON object (keys: {', '.join(map(str, list(data)[:10]))}), not an array of rows or JSON Lines{where}",
            file=name,
            fix="save the rows as a JSON array ([{...}, {...}]) or as JSON Lines (one object per line)",
        )
    )


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _iter_csv(path: Path, name: str, kind: str) -> Iterator[RawRow]:
    with open_text(path, "") as handle:
        try:
            yield from iter_csv_rows(handle, name, "\t" if kind == "tsv" else ",")
        except UnicodeDecodeError as exc:
            raise decode_error(name, 0, exc) from None


def _iter_parquet(path: Path, name: str, kind: str) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    index = 0
    try:  # pyarrow raises ArrowInvalid (a ValueError) or ArrowIOError (an OSError) on a damaged file
        for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                yield RawRow(RowRef(index=index, line=index + 1, file=name), *checked(row))
                index += 1
    except (OSError, ValueError) as exc:
        raise DataError(
            Problem(
                f"is not a readable Parquet file after {index} rows ({type(exc).__name__}: {exc})",
                file=name,
                fix="re-export the file (pyarrow/pandas to_parquet), or use JSONL/CSV",
            )
        ) from None


def _iter_hf_dataset(path: Path, name: str, kind: str) -> Iterator[RawRow]:
    from datasets import load_from_disk

    try:  # a damaged folder fails in datasets/pyarrow with OSError, ValueError, KeyError or TypeError
        yield from _dataset_rows(load_from_disk(str(path)), name)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            Problem(
                f"is not a readable `datasets` save_to_disk folder ({type(exc).__name__}: {exc})",
                file=name,
                fix="save it again with Dataset.save_to_disk, or export JSONL/Parquet",
            )
        ) from None


def _dataset_rows(dataset: Any, name: str) -> Iterator[RawRow]:
    """Rows of a ``datasets`` Dataset (a DatasetDict: its ``train`` split, else its first) with provenance."""
    from datasets import DatasetDict

    if isinstance(dataset, DatasetDict):
        dataset = dataset["train" if "train" in dataset else next(iter(dataset))]
    for index, row in enumerate(dataset):
        yield RawRow(RowRef(index=index, line=index + 1, file=name), *checked(dict(row)))


def _no_rows_problem(path: Path | HubSource, buffered: list[RawRow]) -> DataError:
    """Why a file has no row to read: empty, header only, or every row unparseable."""
    name = str(path)
    if buffered:
        first = buffered[0]
        return DataError(
            Problem(
                f"none of its first {len(buffered)} rows could be parsed (row {first.ref.index}: {first.error})",
                file=first.ref.file or name,
                line=first.ref.line,
                fix="check the file's format matches its extension (.jsonl: one JSON object per line)",
            )
        )
    if isinstance(path, HubSource):
        return DataError(Problem("has no rows", file=name, field="data.split", fix="check data.subset and data.split"))
    if path.is_file() and path.stat().st_size == 0:
        return DataError(Problem("is empty (0 bytes)", file=name, fix="check that the export wrote the data"))
    kind = file_kind(path)
    if kind in ("csv", "tsv"):
        with open_text(path, "") as handle:
            header = next(csv.reader(handle, delimiter="\t" if kind == "tsv" else ","), None)
        if header:
            return DataError(
                Problem(
                    f"has a header ({', '.join(h.strip().lstrip(chr(0xFEFF)) for h in header)}) but no rows",
                    file=name,
                    fix="check that the export wrote the data rows",
                )
            )
    if kind == "json":
        return DataError(Problem("holds an empty JSON array (no rows)", file=name, fix="check that the export wrote the data"))
    return DataError(Problem("has no rows (only blank lines)", file=name, fix="check that the export wrote the data"))


def load_records(
    path: str | Path | HubSource, fmt: str = "auto", columns: Mapping[str, str] | None = None, group_column: str | None = None
) -> tuple[list[Record], list[Rejection], str]:
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
        parsed = [r.data for r in buffered if r.data is not None]
        if not parsed:
            raise _no_rows_problem(as_source(path), buffered)
        fmt = detect_format(parsed, columns, file=str(path))
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
        if isinstance(item, Record):
            records.append(item)
        else:
            rejections.append(item)
    if first_keys is not None and wanted - found:
        raise missing_columns_error(path, sorted(wanted - found), first_keys, columns or {}, group_column)
    if not records and not rejections:  # empty, header only, or blank lines: not a dataset, whatever the format
        raise _no_rows_problem(as_source(path), [])
    return records, rejections, fmt


def load_usable_records(
    path: str | Path | HubSource, config: Any, *, missing: str, missing_fix: str
) -> tuple[list[Record], list[Rejection]]:
    """Rows of a file (or Hub dataset) laid out as ``config.data`` says, or a DataError: file missing, or no usable row."""
    path = as_source(path)
    if isinstance(path, Path) and not path.exists():
        raise DataError(Problem(missing, file=str(path), fix=missing_fix))
    records, rejected, _ = load_records(path, config.data.format, config.data.columns, config.data.group_column)
    if not records:
        first = rejected[0] if rejected else None
        raise DataError(
            Problem(
                "no usable rows" + (f" (first problem: {first.reason})" if first else ""),
                file=str(path),
                line=first.ref.line if first else None,
                fix="check data.format and data.columns",
            )
        )
    return records, rejected


def missing_columns_error(
    path: str | Path | HubSource, missing: list[str], seen: list[str], columns: Mapping[str, str], group_column: str | None
) -> DataError:
    """A column named in the config that no row has: a typo in data.group_column would let groups straddle splits."""
    problems = []
    for name in missing:
        key = "data.group_column" if name == group_column else "data.columns." + next(role for role, col in columns.items() if col == name)
        close = difflib.get_close_matches(name, seen, n=1)
        problems.append(
            Problem(
                f"column {name!r} ({key}) is in no row; columns seen: {', '.join(seen[:20])}",
                file=str(path),
                field=key,
                fix=(f"did you mean {close[0]!r}? " if close else "") + "fix the name in the config",
            )
        )
    return DataError(problems)


def _chain(first: list[RawRow], rest: Iterator[RawRow]) -> Iterator[RawRow]:
    yield from first
    yield from rest
