"""From a raw row to a ``Record``: which columns play which role, which format a file is in, and why a row is rejected."""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Mapping
from typing import Any, Iterable

from tunerail.data.records import FORMATS, RawRow, Record, Rejection
from tunerail.errors import DataError, Problem

_ROLE_ALIASES: dict[Any, str] = {"human": "user", "gpt": "assistant"}  # ShareGPT's names
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
            input_col = _pick(data, "input", columns) or "input"  # no such column: "input" is absent too
            extra = data.get(input_col)
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
        role = _ROLE_ALIASES.get(role, role)
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
