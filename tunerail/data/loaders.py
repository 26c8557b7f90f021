"""Streaming loaders for JSONL, JSON arrays, CSV/TSV, Parquet and `datasets` folders.

Provenance: ``index`` is the 0-based position among all records of the input file,
malformed ones included (for JSONL, line - 1 when there are no blank lines); ``line`` is the
1-based physical line where the record starts (for Parquet/`datasets`, index + 1).
"""
# size: file: being split on branch seamse (issue 24)

from __future__ import annotations

import codecs
import csv
import difflib
import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from tunerail.data.csv_rows import iter_csv_rows
from tunerail.data.hub import HubSource, as_source, open_dataset
from tunerail.data.json_values import checked, loads_row, raw_decode
from tunerail.data.records import FORMATS, RawRow, Record, Rejection
from tunerail.errors import DataError, Problem
from tunerail.data.records import RowRef

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


# --- encodings --------------------------------------------------------------------------------

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_MAGIC = (
    (b"PAR1", "a Parquet file"),
    (b"PK\x03\x04", "a zip archive (or .xlsx workbook)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"SQLite format 3", "an SQLite database"),
    (b"%PDF", "a PDF document"),
)


@dataclass(frozen=True)
class Encoding:
    """How a text file is decoded: the codec name and how it was found (bom, utf-8, detected)."""

    name: str
    how: str

    @property
    def is_plain_utf8(self) -> bool:
        return self.how == "utf-8"

    def describe(self) -> str:
        return {
            "bom": f"{self.name} (byte-order mark)",
            "utf-8": "utf-8",
            "detected": f"{self.name} (detected by charset-normalizer; no byte-order mark)",
        }[self.how]


def detect_encoding(path: str | Path) -> Encoding:
    """The encoding of a text file: its byte-order mark, else valid UTF-8, else charset-normalizer's guess.

    Decoding with ``errors="replace"`` would write U+FFFD into clean files with exit 0, so a
    file that is neither UTF-8 nor confidently another encoding is refused (``DataError``).
    """
    path = Path(path)
    stat = path.stat()
    return _detect_encoding(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _detect_encoding(name: str, size: int, mtime_ns: int) -> Encoding:
    with open(name, "rb") as handle:
        head = handle.read(1 << 16)
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return Encoding(codec, "bom")
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise DataError(
                Problem(
                    f"is a binary file ({what}), not text",
                    file=name,
                    fix="give the file its real extension (.parquet) or export the data as .jsonl/.csv",
                )
            )
    bad_at = _first_invalid_utf8(name)
    if bad_at is None:
        if b"\x00" in head and head.count(b"\x00") * 4 > len(head):
            guess = _charset_guess(head) or ""
            if guess.startswith(("utf_16", "utf_32")):
                return Encoding(codecs.lookup(guess).name, "detected")
            raise DataError(
                Problem("is a binary file (it contains NUL bytes), not text", file=name, fix="export the data as UTF-8 .jsonl/.csv")
            )
        return Encoding("utf-8", "utf-8")
    with open(name, "rb") as handle:
        sample = handle.read(1 << 20)
        if bad_at >= len(sample):  # make sure the sample holds the bytes that are not UTF-8
            handle.seek(max(0, bad_at - (1 << 16)))
            sample += handle.read(1 << 17)
    guess = _charset_guess(sample)
    if guess is None:
        kind = "a binary file" if b"\x00" in head else "not text in any encoding tried"
        raise DataError(
            Problem(
                f"is {kind}: byte {bad_at} is not valid UTF-8 and no other encoding fits",
                file=name,
                fix="save the file as UTF-8 (e.g. `iconv -f <encoding> -t utf-8`)",
            )
        )
    codec = codecs.lookup(guess).name
    try:  # the guess must decode the whole file, or we would still write garbage
        with open(name, encoding=codec, newline="") as handle:
            for _ in iter(lambda: handle.read(1 << 20), ""):
                pass
    except (UnicodeDecodeError, LookupError):
        raise DataError(
            Problem(
                f"is not valid UTF-8 (byte {bad_at}) and does not decode as {codec} either",
                file=name,
                fix="save the file as UTF-8 (e.g. `iconv -f <encoding> -t utf-8`)",
            )
        ) from None
    return Encoding(codec, "detected")


def _first_invalid_utf8(name: str) -> int | None:
    """Byte offset of the first invalid UTF-8 sequence, streaming; None when the file is valid UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(name, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return offset + exc.start
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            return offset + exc.start
    return None


def _charset_guess(sample: bytes) -> str | None:
    from charset_normalizer import from_bytes

    matches = list(from_bytes(sample))
    if not matches:
        return None
    # Short samples tie between single-byte code pages (cp1250, cp1252, cp1257 all decode "café");
    # among the tied best, Western European cp1252 is by far the most common in exported data.
    best = matches[0]
    tied = [m.encoding for m in matches if m.chaos <= best.chaos + 0.01]
    return "cp1252" if "cp1252" in tied else best.encoding


def _open_text(path: Path, newline: str) -> Any:
    """Open a text data file in its detected encoding, strictly (no replacement characters)."""
    return open(path, encoding=detect_encoding(path).name, newline=newline)


def _decode_error(name: str, line: int, exc: UnicodeDecodeError) -> DataError:
    return DataError(
        Problem(
            f"cannot be decoded as {exc.encoding}: {exc.reason} (near line {line})",
            file=name,
            line=line,
            fix="save the file as UTF-8 (e.g. `iconv -f <encoding> -t utf-8`)",
        )
    )


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
    with _open_text(path, "\n") as handle:  # lines end at \n only, as physical lines do
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
            raise _decode_error(name, line_no + 1, exc) from None


def _iter_json_array(path: Path, name: str, kind: str) -> Iterator[RawRow]:
    """The elements of a JSON array; after a malformed element, parsing resumes at the next one.

    A bad element becomes an unparseable row at its position; when the next element cannot be
    located, the file is refused (``DataError``) rather than rows being dropped quietly.
    """
    with _open_text(path, "") as handle:
        try:
            text = handle.read()
        except UnicodeDecodeError as exc:
            raise _decode_error(name, 0, exc) from None
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
    with _open_text(path, "") as handle:
        try:
            yield from iter_csv_rows(handle, name, "\t" if kind == "tsv" else ",")
        except UnicodeDecodeError as exc:
            raise _decode_error(name, 0, exc) from None


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


def pick_column(data: Mapping[str, Any], role: str, columns: Mapping[str, str] | None) -> str | None:
    """Which column of ``data`` plays ``role``: the configured one, else the first default present (the doctor asks too)."""
    if columns and columns.get(role):
        return columns[role]
    for candidate in DEFAULT_COLUMNS[role]:
        if candidate in data:
            return candidate
    return None


_pick = pick_column  # the short name this module's own readers use

# What each format needs, as shown in error messages.
FORMAT_COLUMNS: dict[str, str] = {
    "chat": "messages",
    "instruction": "instruction + output",
    "prompt_completion": "prompt + completion",
    "text_label": "text + label",
}


def row_format(data: Mapping[str, Any], columns: Mapping[str, str] | None = None) -> str | None:
    """The format one row's keys fit, or None."""
    if _pick(data, "messages", columns) in data:
        return "chat"
    if _pick(data, "instruction", columns) in data and _pick(data, "output", columns) in data:
        return "instruction"
    if _pick(data, "prompt", columns) in data and _pick(data, "completion", columns) in data:
        return "prompt_completion"
    if _pick(data, "text", columns) in data and _pick(data, "label", columns) in data:
        return "text_label"
    return None


def detect_format(rows: Iterable[Mapping[str, Any]], columns: Mapping[str, str] | None = None, file: str | None = None) -> str:
    """Guess the format from the keys of the first parseable rows.

    Refuses rows whose keys fit different formats (a mixed file) and, when no row fits, lists
    the columns seen next to the columns each format expects.
    """
    found: dict[str, int] = {}
    seen: dict[str, None] = {}
    count = 0
    for count, data in enumerate(rows, start=1):
        fmt = row_format(data, columns)
        if fmt is None:
            seen.update(dict.fromkeys(map(str, data)))
        else:
            found.setdefault(fmt, count)
    how = "name the format in the config (data.format: chat|instruction|prompt_completion|text_label) and map the columns (data.columns)"
    if len(found) > 1:
        first = sorted(found.items(), key=lambda kv: kv[1])
        parts = ", ".join(f"{fmt} ({FORMAT_COLUMNS[fmt]}) from row {n}" for fmt, n in first)
        raise DataError(
            Problem(
                f"mixes data formats in its first {count} rows: {parts}",
                file=file,
                fix="keep one format per file (convert or split the file), or set data.format to the one you mean",
            )
        )
    if found:
        return next(iter(found))
    if count == 0:
        raise DataError(Problem("has no rows to detect the data format from", file=file, fix="check the file"))
    expected = "; ".join(f"{fmt}: {cols}" for fmt, cols in FORMAT_COLUMNS.items())
    known = [c for roles in DEFAULT_COLUMNS.values() for c in roles]
    hints = [
        f"{col!r} → {close[0]!r}?"
        for col in seen
        if (close := difflib.get_close_matches(col.lower(), known, n=1, cutoff=0.75)) and close[0] != col
    ]
    raise DataError(
        Problem(
            f"could not detect the data format: columns seen: {', '.join(list(seen)[:20]) or '(none)'}; "
            f"expected one of — {expected}" + (f" (similar names: {', '.join(hints[:5])})" if hints else ""),
            file=file,
            fix=how,
        )
    )


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
        with _open_text(path, "") as handle:
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


def to_record(raw: RawRow, fmt: str, columns: Mapping[str, str] | None = None, group_column: str | None = None) -> Record | Rejection:
    """Convert a raw row to a ``Record``, or say precisely why it cannot be one."""
    if raw.data is None:
        return Rejection(raw.ref, raw.error or "unparseable row", field=raw.field, check="format.unparseable", raw=raw.raw)
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
            if extra is not None and (extra := scalar_text(extra)) is None:
                raise _Reject("must be text (a string, number or boolean)", input_col, f"found {type(data[input_col]).__name__}")
            output = _text_field(data, _pick(data, "output", columns) or "output", raw)
            prompt = instruction if not extra or not extra.strip() else f"{instruction}\n\n{extra}"
            return Record(raw.ref, "instruction", None, prompt, output, None, group, _own_fields(data))
        if fmt == "prompt_completion":
            prompt = _text_field(data, _pick(data, "prompt", columns) or "prompt", raw)
            completion = _text_field(data, _pick(data, "completion", columns) or "completion", raw)
            return Record(raw.ref, "prompt_completion", None, prompt, completion, None, group, _own_fields(data))
        if fmt == "text_label":
            text = _text_field(data, _pick(data, "text", columns) or "text", raw)
            label_col = _pick(data, "label", columns) or "label"
            label = data.get(label_col)
            if label is None or (isinstance(label, str) and not label.strip()):
                raise _Reject("is missing or empty", label_col)
            label_text = scalar_text(label)
            if label_text is None:
                raise _Reject("must be a single label (a string, number or boolean)", label_col, f"found {type(label).__name__}")
            # labels repeat across rows: one shared string per label (~60 MB saved at 1M rows)
            label = sys.intern(label_text.strip())
            fields = _own_fields(data)
            if isinstance(fields.get(label_col), str):
                fields[label_col] = sys.intern(fields[label_col])
            return Record(raw.ref, "text_label", None, text, label, label, group, fields)
    except _Reject as rej:
        reason = f"field '{rej.field}' {rej.what}" + (f" ({rej.detail})" if rej.detail else "")
        check = "format.missing_field" if "missing" in rej.what or "empty" in rej.what else "format.wrong_type"
        return Rejection(raw.ref, reason, field=rej.field, data=data, check=check)
    raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")


class _Reject(Exception):
    def __init__(self, what: str, field: str | None, detail: str = ""):
        self.what, self.field, self.detail = what, field, detail


def _own_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """The record's copy of its columns, with the column names interned.

    ``json.loads`` makes new key strings for every line; shared, they cost nothing per row
    (~50 bytes a column a row otherwise, 100 MB for two columns at 1M rows).
    """
    return {sys.intern(k) if type(k) is str else k: v for k, v in data.items()}


def scalar_text(value: Any) -> str | None:
    """A text or label field's value as text: strings as they are, numbers and booleans as JSON writes them.

    One rule for every field: a scalar is text (``42`` -> ``"42"``, ``true`` -> ``"true"``, as a CSV
    cell would read), a list or an object is not (None is returned and the row is rejected).
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return None


def _text_field(data: Mapping[str, Any], name: str, raw: RawRow) -> str:
    if name not in data or data[name] is None:
        raise _Reject("is missing", name)
    value = scalar_text(data[name])
    if value is None:
        raise _Reject("must be text (a string, number or boolean)", name, f"found {type(data[name]).__name__}")
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
        text = scalar_text(content)
        if text is None:
            raise _Reject("must be text (a string, number or boolean)", f"{where}.content", f"found {type(content).__name__}")
        turns.append({"role": role, "content": text})
    last_assistant = max((i for i, t in enumerate(turns) if t["role"] == "assistant"), default=None)
    if last_assistant is None:
        raise _Reject("has no assistant turn", name, "nothing to learn from")
    if not turns[last_assistant]["content"].strip():
        raise _Reject("is empty", f"{name}[{last_assistant}].content", "the assistant answer")
    prompt = "\n".join(t["content"] for t in turns[:last_assistant])
    return Record(raw.ref, "chat", turns, prompt, turns[last_assistant]["content"], None, group, _own_fields(data))


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
        (records if isinstance(item, Record) else rejections).append(item)
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
    path: str | Path, missing: list[str], seen: list[str], columns: Mapping[str, str], group_column: str | None
) -> DataError:
    """A column named in the config that no row has: a typo in data.group_column would let groups straddle splits."""
    import difflib

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
