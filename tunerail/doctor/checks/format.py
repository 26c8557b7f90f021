"""Format checks: rows the loader rejected, and text that is technically valid but broken.

Rejected rows (unparseable lines, missing or mistyped fields, unknown chat roles,
conversations without an assistant turn) come from ``load_records``; the rest of the file is
still audited. Mojibake, control characters, leftover markup and escape sequences are found
in the records' text fields.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from tunerail.data.records import Rejection
from tunerail.doctor.checks._common import excerpt, found, instruction_parts, text_fields
from tunerail.doctor.context import CheckContext
from tunerail.doctor.registry import register
from tunerail.findings import Finding, Severity

DROP = {"fix_action": "drop"}


def rejection_kind(rej: Rejection) -> str:
    """The format check a rejected row belongs to."""
    if rej.check == "format.unparseable":
        return "format.unparseable"
    if "unknown role" in rej.reason:
        return "format.unknown_role"
    if "no assistant turn" in rej.reason:
        return "format.no_assistant_turn"
    if rej.check == "format.missing_field":
        return "format.missing_field"
    return "format.wrong_type"


def _rejections(ctx: CheckContext, kind: str, fix: str, csv_fix: str | None = None) -> list[Finding]:
    out = []
    for rej in ctx.rejections:
        if rejection_kind(rej) != kind:
            continue
        is_csv = Path(rej.ref.file or "").suffix.lower() in (".csv", ".tsv", ".txt")
        out.append(
            found(
                Severity.ERROR,
                f"line {rej.ref.line}: {rej.reason}",
                csv_fix if csv_fix and is_csv else fix,
                rows=[rej.ref],
                details={**DROP, **({"field": rej.field} if rej.field else {})},
            )
        )
    return out


@register("DOC001", "format.unparseable")
def unparseable(ctx: CheckContext) -> list[Finding]:
    """Lines that are not valid JSON objects, hold NaN/Infinity, or CSV rows that do not parse (wrong cell count, open quote).

    Anti-pattern: a hand-edited JSONL with a trailing comma or an unescaped quote; most loaders
    stop at the first one, or skip it silently. Fix: repair the line, or let ``--fix`` drop it.
    """
    return _rejections(
        ctx,
        "format.unparseable",
        "repair the line (one JSON object per line, quotes escaped) or drop it with --fix",
        csv_fix="repair the CSV row (one cell per column; a cell holding the delimiter, a quote or a line break is wrapped "
        'in double quotes, with inner quotes doubled: "say ""hi""") or drop it with --fix',
    )


@register("DOC002", "format.missing_field")
def missing_field(ctx: CheckContext) -> list[Finding]:
    """Rows whose required field (instruction, output, text, label...) is missing or empty.

    Anti-pattern: an empty answer teaches the model to stop immediately. Fix: fill the field or
    drop the row (``--fix`` drops it); if the column has another name, map it in ``data.columns``.
    """
    return _rejections(ctx, "format.missing_field", "fill the field or drop the row (--fix); map renamed columns in data.columns")


@register("DOC003", "format.wrong_type")
def wrong_type(ctx: CheckContext) -> list[Finding]:
    """Rows whose field has the wrong type (a list where a string belongs, a non-list ``messages``).

    Fix: convert the field to the expected type in the export that produced the file.
    """
    return _rejections(
        ctx, "format.wrong_type", "convert the field to the expected type (strings for text, a list of {role, content} for messages)"
    )


@register("DOC004", "format.unknown_role")
def unknown_role(ctx: CheckContext) -> list[Finding]:
    """Chat messages with a role the chat template does not know (``bot``, ``Human``...).

    Anti-pattern: templates silently drop or mangle unknown roles. Fix: rename to
    system/user/assistant/tool.
    """
    return _rejections(ctx, "format.unknown_role", "rename the role to system, user, assistant or tool")


@register("DOC005", "format.no_assistant_turn")
def no_assistant_turn(ctx: CheckContext) -> list[Finding]:
    """Conversations without an assistant turn: nothing for the model to learn from.

    Fix: add the assistant's answer or drop the conversation (``--fix`` drops it).
    """
    return _rejections(ctx, "format.no_assistant_turn", "add the assistant's answer or drop the conversation (--fix)")


@register("DOC011", "format.encoding")
def encoding(ctx: CheckContext) -> list[Finding]:
    """Files that are not plain UTF-8: the encoding they were read in (byte-order mark or detected).

    Anti-pattern: a Latin-1 export decoded as UTF-8 with replacement characters, written into
    the clean file without a word. The loader decodes BOM files and detected encodings strictly
    (or stops); a detected encoding is a guess, so it is a warning. Fix: save the file as UTF-8.
    """
    from tunerail.data.encoding import detect_encoding

    refs = [r.ref for r in ctx.records[:1]] + [r.ref for r in ctx.rejections[:1]]
    files = sorted({ref.file for ref in refs if ref.file})
    out = []
    for name in files:
        path = Path(name)
        if not path.is_file() or path.suffix.lower() not in (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".txt"):
            continue
        enc = detect_encoding(path)
        if enc.is_plain_utf8:
            continue
        guessed = enc.how == "detected"
        out.append(
            found(
                Severity.WARNING if guessed else Severity.INFO,
                f"{name} is not plain UTF-8: read as {enc.describe()}" + ("; check the examples read correctly" if guessed else ""),
                "save the file as UTF-8 without BOM (e.g. `iconv -f <encoding> -t utf-8`)",
                details={"encoding": enc.name, "how": enc.how, "file": name},
            )
        )
    return out


@register("DOC006", "format.mojibake")
def mojibake(ctx: CheckContext) -> list[Finding]:
    """Text decoded with the wrong encoding ("cafÃ©", "â€™"), detected by ``ftfy``.

    Anti-pattern: the model learns to produce the garbled sequences. Fix: repair the text with
    ``ftfy.fix_text`` (the message shows its repair) or re-export the data as UTF-8.
    """
    import ftfy
    from ftfy.badness import is_bad

    out = []
    for rec in ctx.records:
        for name, text in text_fields(rec, ctx):
            if text and is_bad(text):
                out.append(
                    found(
                        Severity.WARNING,
                        f'field \'{name}\' looks wrongly decoded: "{excerpt(text)}" (ftfy repairs it to "{excerpt(ftfy.fix_text(text))}")',
                        "repair with ftfy.fix_text, or re-export the source as UTF-8",
                        rows=[rec.ref],
                        details={"field": name},
                    )
                )
                break
    return out


_ALLOWED_CONTROL = {"\n", "\t", "\r"}


def _bad_chars(text: str) -> list[str]:
    found = []
    for ch in text:
        if ch == "\ufffd" or (ch not in _ALLOWED_CONTROL and unicodedata.category(ch) == "Cc"):
            found.append(ch)
    return found


@register("DOC007", "format.control_chars")
def control_chars(ctx: CheckContext) -> list[Finding]:
    """Control characters (NUL, escape, backspace...) and U+FFFD, the mark of invalid UTF-8.

    Anti-pattern: invisible bytes from PDFs, terminals or a broken encoding end up in training
    targets. Fix: strip them (``re.sub(r"[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]", "", text)``) or
    re-export the file as UTF-8.
    """
    out = []
    for rec in ctx.records:
        for name, text in text_fields(rec, ctx):
            bad = _bad_chars(text)
            if bad:
                kinds = sorted({f"U+{ord(c):04X}" for c in bad})
                out.append(
                    found(
                        Severity.WARNING,
                        f"field '{name}' contains {len(bad)} control/replacement character(s): {', '.join(kinds[:5])}",
                        "strip control characters; U+FFFD means the file was not valid UTF-8: re-export it",
                        rows=[rec.ref],
                        details={"field": name, "characters": kinds},
                    )
                )
                break
    return out


_TAG = re.compile(
    r"</?(?:p|br|div|span|a|b|i|u|em|strong|ul|ol|li|table|tr|td|th|h[1-6]|img|font|script|style|"
    r"html|body|head|iframe|center|hr|code|pre|blockquote|sup|sub)\b[^<>]{0,200}>",
    re.IGNORECASE,
)
_ENTITY = re.compile(r"&(?:nbsp|amp|lt|gt|quot|apos|#\d{1,6}|#x[0-9a-fA-F]{1,6});")
_MARKUP_TASK = re.compile(
    r"\b(html|xml|markup|tags?|web ?page|website|css|javascript|jsx|svg|code|program|script|"
    r"function|snippet|element)\b",
    re.IGNORECASE,
)


@register("DOC008", "format.markup")
def markup(ctx: CheckContext) -> list[Finding]:
    """Leftover HTML tags or entities (``<br>``, ``<p>``, ``&nbsp;``) from scraping or exports.

    Rows whose prompt asks for markup or code are skipped, since tags belong there.
    Anti-pattern: the model learns to emit ``<br>`` in plain-text answers. Fix: convert to plain
    text (``html.unescape`` and strip the tags) in the export.
    """
    out = []
    for rec in ctx.records:
        instruction, _, _ = instruction_parts(rec, ctx)
        if _MARKUP_TASK.search(instruction):
            continue
        for name, text in text_fields(rec, ctx):
            match = _TAG.search(text) or _ENTITY.search(text)
            if match:
                out.append(
                    found(
                        Severity.WARNING,
                        f"field '{name}' contains leftover markup {match.group(0)[:40]!r}",
                        "convert to plain text: strip the tags and html.unescape the entities",
                        rows=[rec.ref],
                        details={"field": name, "markup": match.group(0)[:80]},
                    )
                )
                break
    return out


_ESCAPES = re.compile(r"\\[ntr\"']|\\u[0-9a-fA-F]{4}")


@register("DOC009", "format.escape_chars")
def escape_chars(ctx: CheckContext) -> list[Finding]:
    """Literal escape sequences (a backslash followed by ``n``, ``t``, a quote) in plain text.

    A defect listed for the original Alpaca data: text that was JSON-escaped twice shows
    backslash-n instead of a line break. Rows about code are skipped (escapes are legitimate
    inside string literals). Fix: unescape once in the export.
    """
    out = []
    for rec in ctx.records:
        instruction, _, _ = instruction_parts(rec, ctx)
        if _MARKUP_TASK.search(instruction):
            continue
        for name, text in text_fields(rec, ctx):
            match = _ESCAPES.search(text)
            if match and "```" not in text:
                out.append(
                    found(
                        Severity.WARNING,
                        f"field '{name}' contains the literal escape {match.group(0)!r}: text escaped twice",
                        "unescape the text once (json.loads of the quoted string) in the export",
                        rows=[rec.ref],
                        details={"field": name},
                    )
                )
                break
    return out
