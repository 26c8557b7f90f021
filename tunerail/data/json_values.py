"""Parsing one JSON value safely: no NaN/Infinity, no RecursionError, named field on failure.

Python's ``json`` accepts ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON) and gives them back as
floats, which ``json.dumps`` writes out again as the same invalid tokens: a row holding one would
reach ``clean.jsonl`` and ``test.jsonl`` as a line other readers refuse. Deeply nested input
(``[[[[...``) makes the C parser raise ``RecursionError``. Both become a row error here, so the
row is quarantined instead of the file being refused or the outputs being corrupted.
"""

from __future__ import annotations

import json
import math
from typing import Any

DEPTH_ERROR = "nested too deeply to parse (Python's JSON parser stops at about 1,000 levels)"


def _refuse_constant(token: str) -> float:
    return float("nan") if token == "NaN" else float("inf")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def non_finite_field(value: Any, path: str = "") -> str | None:
    """The path (``text``, ``messages[1].content``) of the first NaN or infinite number in ``value``, or None."""
    if isinstance(value, float):
        return path or "(value)" if not math.isfinite(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (float, dict, list)) and (where := non_finite_field(item, f"{path}.{key}" if path else str(key))):
                return where
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, (float, dict, list)) and (where := non_finite_field(item, f"{path}[{i}]")):
                return where
    return None


def non_finite_error(field: str) -> str:
    """The row error for a NaN/Infinity value: names the field and why it cannot be kept."""
    return f"field '{field}' holds NaN or Infinity, which is not valid JSON (it would make the written files unreadable)"


def loads_row(text: str) -> tuple[Any, str | None, str | None]:
    """Parse one JSON value: ``(data, error, field)``; on failure ``data`` is None and ``error`` says why.

    Raises nothing for bad input: invalid JSON, too deep nesting and NaN/Infinity all come back as
    an error (with the field for NaN/Infinity).
    """
    try:
        data = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} at column {exc.colno}", None
    except RecursionError:
        return None, f"invalid JSON: {DEPTH_ERROR}", None
    return checked(data)


def checked(data: Any) -> tuple[Any, str | None, str | None]:
    """``(data, None, None)``, or ``(None, error, field)`` when ``data`` holds a NaN or infinite number."""
    if (field := non_finite_field(data)) is not None:
        return None, non_finite_error(field), field
    return data, None, None


def raw_decode(text: str, pos: int) -> tuple[Any, int]:
    """``JSONDecoder.raw_decode`` that reports too deep nesting as a ``JSONDecodeError``."""
    try:
        return _DECODER.raw_decode(text, pos)
    except RecursionError:
        raise json.JSONDecodeError(DEPTH_ERROR, text, pos) from None
