"""Instruction-data defects a program can detect (the cleaned-Alpaca defect list).

See ``AlpacaDataCleaned_README.md`` in the shared data: instructions referring to an input
that is missing, inputs the model cannot see (URLs, images), placeholder outputs, "N/A"
outputs, inconsistent empty-input markers, several instructions merged into one row, and
code tasks without the code.
"""

from __future__ import annotations

import re

from tunerail.doctor.checks._common import answer_field, excerpt, instruction_parts
from tunerail.doctor.context import CheckContext
from tunerail.doctor.registry import register
from tunerail.findings import Finding, Severity

_OBJECTS = (r"(?:sentences?|text|paragraphs?|passage|article|story|poem|statement|words?|phrases?|quotes?|"
            r"equation|expression|list|data|dataset|table|email|letter|review|tweet|code|program|function|"
            r"snippet|document|essay|input|numbers?|song|lyrics|dialogue|conversation|string|array|query|"
            r"product|description|argument|excerpt|headline|title|recipe|name|items?|set)")
_REFERS = re.compile(
    rf"\b(?:the following|the given|this|these|the provided|the above|the below|given)\s+(?:\w+\s+){{0,2}}?{_OBJECTS}\b"
    rf"|\b{_OBJECTS}\s+(?:below|provided|given)\b|\bbelow\s*[:.]?\s*$|\bthe following\s*[:.]?\s*$",
    re.IGNORECASE)
_INLINE_CONTENT = re.compile(r"[:\"“]\s*\S+(?:\s+\S+)")


@register("DOC025", "instruct.missing_input")
def missing_input(ctx: CheckContext) -> list[Finding]:
    """Instructions that refer to an input ("the following sentence", "this code") that is absent.

    Anti-pattern (Alpaca): "Summarise the following article." with an empty input; the output
    then invents the article, which teaches hallucination. Fix: supply the input or drop the row.
    """
    out = []
    for rec in ctx.records:
        if rec.format != "instruction":
            continue
        instruction, extra, _ = instruction_parts(rec, ctx)
        if extra.strip() and not _is_empty_marker(extra):
            continue
        match = _REFERS.search(instruction)
        if match and not _INLINE_CONTENT.search(instruction[match.end():]):
            out.append(Finding("instruct.missing_input", Severity.WARNING,
                               f"instruction refers to {match.group(0).strip()!r} but the input is empty: \"{excerpt(instruction)}\"",
                               "add the input the instruction refers to, or drop the row",
                               rows=[rec.ref], details={"phrase": match.group(0).strip()}))
    return out


_PLACEHOLDER_MEDIA = re.compile(
    r"<\s*(?:picture|image|photo|img|video|audio|file|attachment|graph|chart|table)[^<>]{0,20}>"
    r"|\[\s*(?:picture|image|photo|video|audio|attachment)[^\[\]]{0,20}\]"
    r"|\(\s*(?:picture|image|photo) attached\s*\)"
    r"|\b[\w-]+\.(?:jpe?g|png|gif|bmp|webp|mp4|mp3|wav|pdf)\b", re.IGNORECASE)
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
_ABOUT_URLS = re.compile(r"\b(?:url|urls|link|links|domain|web ?address|hyperlink|website address|html)\b", re.IGNORECASE)


@register("DOC026", "instruct.unseen_input")
def unseen_input(ctx: CheckContext) -> list[Finding]:
    """Inputs the model cannot see: a URL instead of the text, an image or "<Picture Attached>".

    Anti-pattern (Alpaca): "Summarise this article" with only a link; the answer is invented.
    Tasks about URLs themselves ("extract the domain") are not flagged. Fix: paste the content
    the task needs, or drop the row.
    """
    out = []
    for rec in ctx.records:
        instruction, extra, _ = instruction_parts(rec, ctx)
        prompt = rec.prompt
        media = _PLACEHOLDER_MEDIA.search(prompt)
        if media:
            what = f"a media placeholder {media.group(0)!r}"
        else:
            source = extra if extra.strip() else prompt
            url = _URL.search(source)
            bare = url is not None and len(_URL.sub("", source).split()) <= (3 if extra.strip() else 12)
            if not bare or _ABOUT_URLS.search(instruction):
                continue
            what = f"only a URL ({url.group(0)[:60]})"
        out.append(Finding("instruct.unseen_input", Severity.WARNING,
                           f"the prompt gives {what}: the model cannot see that content and the answer is invented",
                           "paste the content the task needs (the text, a description of the image) or drop the row",
                           rows=[rec.ref], details={"what": what}))
    return out


_PLACEHOLDER_OUTPUT = re.compile(
    r"^\s*(?:<\s*no\s*-?\s*output\s*>|<\s*nooutput\s*>|\[\s*no\s*output\s*\]|no output\.?|<\s*none\s*>|"
    r"n/a\.?|N\.A\.|not applicable\.?|<\s*output\s*>|<\s*insert [^<>]*>|<\s*empty\s*>|\[\s*empty\s*\]|"
    r"this (?:task|instruction) (?:cannot|can ?not) be (?:completed|done|performed)[^\n]{0,60})\s*$",
    re.IGNORECASE)


@register("DOC027", "instruct.placeholder_output")
def placeholder_output(ctx: CheckContext) -> list[Finding]:
    """Answers that are placeholders: "<No Output>", "N/A", "Not applicable", "<insert ...>".

    Anti-pattern (Alpaca): requests the model cannot fulfil ("design a logo") answered with
    "<No Output>": the model learns to emit the placeholder. Fix: drop the row (``--fix`` does).
    """
    out = []
    for rec in ctx.records:
        if rec.format == "text_label":
            continue
        if _PLACEHOLDER_OUTPUT.match(rec.completion):
            out.append(Finding("instruct.placeholder_output", Severity.ERROR,
                               f"field '{answer_field(rec, ctx)}' is a placeholder: {rec.completion.strip()[:40]!r}",
                               "drop the row (--fix does) or write a real answer",
                               rows=[rec.ref], details={"fix_action": "drop"}))
    return out


_EMPTY_MARKER = re.compile(r"^\s*[<\[(]?\s*(?:no\s*-?\s*input|none|null|nil|n/?a|empty|nothing|blank|-+|\.)\s*[>\])]?\s*\.?\s*$",
                           re.IGNORECASE)


def _is_empty_marker(text: str) -> bool:
    return bool(text.strip()) and bool(_EMPTY_MARKER.match(text))


@register("DOC028", "instruct.empty_input_marker")
def empty_input_marker(ctx: CheckContext) -> list[Finding]:
    """Inputs that say "no input" in words ("<noinput>", "No input", "N/A") instead of being empty.

    Anti-pattern (Alpaca): several spellings of the empty input; the model sees different
    prompts for the same situation. Fix: replace these markers with "".
    """
    out = []
    for rec in ctx.records:
        if rec.format != "instruction":
            continue
        _, extra, _ = instruction_parts(rec, ctx)
        if _is_empty_marker(extra):
            out.append(Finding("instruct.empty_input_marker", Severity.WARNING,
                               f"input is the marker {extra.strip()!r} instead of an empty string",
                               "replace the marker with \"\" so every row without input looks the same",
                               rows=[rec.ref], details={"marker": extra.strip()}))
    return out


_MERGED = re.compile(r"(?:^|\n)\s*(?:#{1,4}\s*\n?\s*)?(?:\d{1,3}\s*[.)]\s*)?(?:instruction|input|output|response)\s*:",
                     re.IGNORECASE)
_NUMBERED_MERGED = re.compile(r"(?:^|\n)\s*#{1,4}\s*\n\s*\d{1,3}\s*\.\s*\w|(?:^|\n)\s*\d{1,3}\s*\.\s*(?:instruction|input|output)\s*:",
                              re.IGNORECASE)


@register("DOC029", "instruct.merged")
def merged(ctx: CheckContext) -> list[Finding]:
    """Several instruction/input/output blocks merged into one row ("##\\n18. Instruction: ...").

    Anti-pattern (Alpaca): a generator's numbered list leaks into one answer; the model learns to
    continue with new, made-up tasks. Fix: split the blocks into separate rows or cut the answer.
    """
    out = []
    for rec in ctx.records:
        _, _, answer = instruction_parts(rec, ctx)
        match = _NUMBERED_MERGED.search(answer) or _MERGED.search(answer)
        if match:
            out.append(Finding("instruct.merged", Severity.WARNING,
                               f"the answer contains another task block {excerpt(match.group(0).strip(), 40)!r}",
                               "cut the answer before the extra block, or split the blocks into separate rows",
                               rows=[rec.ref], details={"marker": match.group(0).strip()[:60]}))
    return out


_CODE_REF = re.compile(r"\b(?:this|the following|the given|given|the below|the above|the provided)\s+(?:\w+\s+)?"
                       r"(?:code|program|function|snippet|script|query|class|method|algorithm implementation)\b"
                       r"|\b(?:code|program|function|snippet|script)\s+(?:below|provided|given)\b", re.IGNORECASE)
_CODE_ASK = re.compile(r"\b(?:write|create|generate|implement|construct|develop|design|compose|code)\s+(?:a|an|the|some)?\s*"
                       r"(?:\w+\s+){0,3}?(?:code|program|function|script|class|method|snippet|sql query|query|algorithm in \w+)\b",
                       re.IGNORECASE)
_CODE_TOKENS = re.compile(r"[{};]|\bdef |\breturn\b|\bfunction\b|\bimport |\bprint\s*\(|\bSELECT\b|\bFROM\b|"
                          r"\bfor\s*\(|\bfor \w+ in\b|\bwhile\s*\(|#include|=>|console\.log|\bpublic\b|\bint \w|"
                          r"\w+\([^()]*\)|\w+\s*=\s*\S|</?\w+>|```")


def looks_like_code(text: str) -> bool:
    """Two or more distinct code tokens (braces, ``def``, ``return``, assignments, calls...)."""
    return len({m.group(0).strip()[:6] for m in _CODE_TOKENS.finditer(text)}) >= 2


@register("DOC030", "instruct.code_missing")
def code_missing(ctx: CheckContext) -> list[Finding]:
    """Code tasks without the code: "fix this function" with no function, "write a program" answered in prose.

    Anti-pattern (Alpaca): the code was lost when the data was generated; the answer describes
    code that is not there. Fix: add the code or drop the row.
    """
    out = []
    for rec in ctx.records:
        instruction, extra, answer = instruction_parts(rec, ctx)
        prompt = rec.prompt
        ref = _CODE_REF.search(instruction)
        if ref and not looks_like_code(prompt.replace(instruction, "", 1) if extra else instruction[ref.end():]):
            where, phrase = "prompt", ref.group(0)
        else:
            ask = _CODE_ASK.search(instruction)
            if not ask or looks_like_code(answer):
                continue
            where, phrase = "answer", ask.group(0)
        out.append(Finding("instruct.code_missing", Severity.WARNING,
                           f"code task ({phrase.strip()!r}) but the {where} contains no code",
                           "add the code the task is about, or drop the row",
                           rows=[rec.ref], details={"missing_in": where}))
    return out
