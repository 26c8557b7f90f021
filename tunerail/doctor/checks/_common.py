"""Helpers shared by the check modules: row references, named text fields, short excerpts."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from tunerail.data.layout import pick_column
from tunerail.data.records import Record
from tunerail.doctor.context import CheckContext
from tunerail.data.records import RowRef
from tunerail.findings import Finding, Severity


def found(severity: Severity, message: str, fix: str, **kwargs: Any) -> Finding:
    """A finding of the running check: ``@register`` fills in its name and code (typed once, there)."""
    return Finding("", severity, message, fix, **kwargs)


def refs(records: Sequence[Record], positions: Iterable[int]) -> list[RowRef]:
    """Row references of ``records[i]`` for each position, sorted by index."""
    return sorted(records[i].ref for i in positions)


def excerpt(text: str, limit: int = 60, tail: bool = False) -> str:
    """A one-line, shortened quote of ``text`` for messages (redacted before it is cut, so no half key shows);
    ``tail`` quotes its last ``limit`` characters instead of its first."""
    from tunerail.report.redact import redact_text

    text = " ".join(redact_text(text).split())
    if tail:
        return text[-limit:]
    return text if len(text) <= limit else text[: limit - 1] + "…"


MAX_CHECK_CHARS = 200_000  # pattern checks read this much of a field: a 50 MB row must not cost gigabytes


def text_fields(record: Record, ctx: CheckContext) -> list[tuple[str, str]]:
    """Every free-text field of a record, named as in the user's file, each cut at ``MAX_CHECK_CHARS``.

    The pattern checks (mojibake, markup, PII, secrets...) look at the first 200,000 characters of a
    field; a longer field is itself reported by ``lengths.truncated`` long before that.
    """
    return [(name, text[:MAX_CHECK_CHARS]) for name, text in _text_fields(record, ctx)]


def _text_fields(record: Record, ctx: CheckContext) -> list[tuple[str, str]]:
    if record.format == "chat":
        return [(f"messages[{i}]", m["content"]) for i, m in enumerate(record.messages)]
    columns = ctx.config.data.columns
    if record.format == "instruction":
        out = []
        for role in ("instruction", "input", "output"):
            name = pick_column(record.fields, role, columns) or role
            value = record.fields.get(name)
            if isinstance(value, str):
                out.append((name, value))
        return out
    if record.format == "prompt_completion":
        return [
            (pick_column(record.fields, "prompt", columns) or "prompt", record.prompt),
            (pick_column(record.fields, "completion", columns) or "completion", record.completion),
        ]
    return [(pick_column(record.fields, "text", columns) or "text", record.prompt)]


def instruction_parts(record: Record, ctx: CheckContext) -> tuple[str, str, str]:
    """(instruction, input, answer) of a record; ``input`` is empty outside the instruction format."""
    if record.format == "instruction":
        columns = ctx.config.data.columns
        fields = record.fields
        instruction = fields.get(pick_column(fields, "instruction", columns) or "instruction") or ""
        extra = fields.get(pick_column(fields, "input", columns) or "input") or ""
        return str(instruction), extra if isinstance(extra, str) else "", record.completion
    return record.prompt, "", record.completion


def answer_field(record: Record, ctx: CheckContext) -> str:
    """The name of the field holding the answer (``output``, ``completion``, ``messages[3]``)."""
    if record.format == "chat":
        last = max(i for i, m in enumerate(record.messages) if m["role"] == "assistant")
        return f"messages[{last}]"
    role = {"instruction": "output", "prompt_completion": "completion", "text_label": "label"}[record.format]
    return pick_column(record.fields, role, ctx.config.data.columns) or role


def is_generation(ctx: CheckContext) -> bool:
    """Answer-quality checks apply to generated answers, not to class labels."""
    return not (ctx.records and ctx.records[0].format == "text_label")
