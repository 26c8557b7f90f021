"""Instruction-data defects a program can detect (the cleaned-Alpaca defect list).

See ``AlpacaDataCleaned_README.md`` in the shared data: instructions referring to an input
that is missing, inputs the model cannot see (URLs, images), placeholder outputs, "N/A"
outputs, inconsistent empty-input markers, several instructions merged into one row, and
code tasks without the code.
"""

from __future__ import annotations

import re

from tunerail.doctor.checks._common import answer_field, excerpt, found, instruction_parts, is_generation
from tunerail.doctor.context import CheckContext
from tunerail.doctor.registry import register
from tunerail.findings import Finding, Severity

_OBJECTS = (
    r"(?:sentences?|text|paragraphs?|passage|article|story|poem|statement|words?|phrases?|quotes?|"
    r"equation|expression|list|data|dataset|table|email|letter|review|tweet|code|program|function|"
    r"snippet|document|essay|input|numbers?|song|lyrics|dialogue|conversation|string|array|query|"
    r"product|description|argument|excerpt|headline|title|recipe|name|items?|set|noun|verb|adjective|"
    r"city|country|animal|company|organi[sz]ation|project|job|design|post|message|news|report|events?|"
    r"situation|scenario|topic|context|book|movie|character|person|question|answer|options?|choices?|"
    r"pairs?|examples?|values?|address|url|link|image|picture|photo|speech|note|instructions|summary|"
    r"facts?|information|shade|color|colour|website|plan|proposal|program)"
)
_REFERS = re.compile(
    rf"\b(?:the following|the given|the provided|the above|the below)\b"
    rf"|(?<!\ba )(?<!\ban )(?<!\bany )\bgiven\s+(?:[\w’'-]+\s+){{0,2}}?{_OBJECTS}\b"
    rf"|\b(?:this|these)\s+(?:[\w’'-]+\s+){{0,2}}?{_OBJECTS}\b"
    rf"|\b{_OBJECTS}\s+(?:below|provided|given)\b|\bbelow\s*[:.]?\s*$",
    re.IGNORECASE,
)
# Content given inline after the reference: "...sentence: I goes home", "...the quote \"...\"".
_INLINE_CONTENT = re.compile(r"[:\n?]\s*\S+(?:\s+\S+)?|[\"“‘'][^\"”’']{2,}[\"”’']|\([^()]*\d[^()]*\)")


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
        instruction, extra, answer = instruction_parts(rec, ctx)
        if extra.strip() and not _is_empty_marker(extra):
            continue
        if _CODE_ASK.search(instruction) and looks_like_code(answer[:4000]):
            continue  # "write a function to find the gcd of the given array": the array is the function's argument
        match = _REFERS.search(instruction)
        if match and not _INLINE_CONTENT.search(instruction[match.start() :]):
            out.append(
                found(
                    Severity.WARNING,
                    f'instruction refers to {match.group(0).strip()!r} but the input is empty: "{excerpt(instruction)}"',
                    "add the input the instruction refers to, or drop the row",
                    rows=[rec.ref],
                    details={"phrase": match.group(0).strip()},
                )
            )
    return out


_PLACEHOLDER_MEDIA = re.compile(
    r"<\s*(?:picture|image|photo|img|video|audio|file|attachment|graph|chart|table)[^<>]{0,20}>"
    r"|\[\s*(?:picture|image|photo|video|audio|attachment)[^\[\]]{0,20}\]"
    r"|\(\s*(?:picture|image|photo) attached\s*\)"
    r"|\b[\w-]+\.(?:jpe?g|png|gif|bmp|webp|mp4|mp3|wav|pdf)\b",
    re.IGNORECASE,
)
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
_ASKS_ABOUT = re.compile(
    r"\b(?:summari[sz]e|describe|explain|translate|analy[sz]e|review|read|watch|listen to|"
    r"rewrite|paraphrase|critique|what (?:does|is) (?:it|this|the))\b",
    re.IGNORECASE,
)
_ABOUT_URLS = re.compile(r"\b(?:url|urls|link|links|domain|web ?address|hyperlink|website address|html)\b", re.IGNORECASE)


def prompt_is_instruction(ctx: CheckContext) -> bool:
    """Whether a row's prompt asks for something (generation, chat) rather than being the content the
    task works on (classification, extraction: the instruction is the config's system prompt, and a
    post with a link or the words "this dress code" is simply the text to read)."""
    return is_generation(ctx) and ctx.task not in ("classification", "extraction")


@register("DOC026", "instruct.unseen_input")
def unseen_input(ctx: CheckContext) -> list[Finding]:
    """Inputs the model cannot see: a URL instead of the text, an image or "<Picture Attached>".

    Anti-pattern (Alpaca): "Summarise this article" with only a link; the answer is invented.
    Tasks about URLs themselves ("extract the domain") are not flagged. Fix: paste the content
    the task needs, or drop the row.
    """
    if not prompt_is_instruction(ctx):
        return []  # a classified or extracted-from message may well contain a link
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
            if url is None or _ABOUT_URLS.search(instruction):
                continue
            rest = _URL.sub("", source)
            # A separate input that is only a link, or a prompt that is a link plus a request about
            # it ("Summarise this article: <url>"). A post with a link beside its own text is content.
            bare = len(rest.split()) <= 3 or (
                not extra.strip() and len(rest.split()) <= 12 and (_REFERS.search(rest) or _ASKS_ABOUT.search(rest))
            )
            if not bare:
                continue
            what = f"only a URL ({url.group(0).rstrip(').,;]')[:60]})"
        out.append(
            found(
                Severity.WARNING,
                f"the prompt gives {what}: the model cannot see that content and the answer is invented",
                "paste the content the task needs (the text, a description of the image) or drop the row",
                rows=[rec.ref],
                details={"what": what},
            )
        )
    return out


_PLACEHOLDER_OUTPUT = re.compile(
    r"^\s*(?:<\s*no\s*-?\s*output\s*>|<\s*nooutput\s*>|\[\s*no\s*output\s*\]|no output\.?|<\s*none\s*>|"
    r"n/a\.?|N\.A\.|not applicable\.?|<\s*output\s*>|<\s*insert [^<>]*>|<\s*empty\s*>|\[\s*empty\s*\]|"
    r"this (?:task|instruction) (?:cannot|can ?not) be (?:completed|done|performed)[^\n]{0,60})\s*$",
    re.IGNORECASE,
)


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
            out.append(
                found(
                    Severity.ERROR,
                    f"field '{answer_field(rec, ctx)}' is a placeholder: {rec.completion.strip()[:40]!r}",
                    "drop the row (--fix does) or write a real answer",
                    rows=[rec.ref],
                    details={"fix_action": "drop"},
                )
            )
    return out


_EMPTY_MARKER = re.compile(
    r"^\s*[<\[(]?\s*(?:no\s*-?\s*input|none|null|nil|n/?a|empty|nothing|blank|-+|\.)\s*[>\])]?\s*\.?\s*$", re.IGNORECASE
)


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
            out.append(
                found(
                    Severity.WARNING,
                    f"input is the marker {extra.strip()!r} instead of an empty string",
                    'replace the marker with "" so every row without input looks the same',
                    rows=[rec.ref],
                    details={"marker": extra.strip()},
                )
            )
    return out


_MERGED = re.compile(r"(?:^|\n)\s*(?:#{1,4}\s*\n?\s*)?(?:\d{1,3}\s*[.)]\s*)?(?:###\s*)?instruction\s*:", re.IGNORECASE)
_NUMBERED_MERGED = re.compile(
    r"(?:^|\n)\s*#{1,4}\s*\n\s*\d{1,3}\s*\.\s*\w|(?:^|\n)\s*\d{1,3}\s*\.\s*(?:instruction|input|output)\s*:", re.IGNORECASE
)


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
            out.append(
                found(
                    Severity.WARNING,
                    f"the answer contains another task block {excerpt(match.group(0).strip(), 40)!r}",
                    "cut the answer before the extra block, or split the blocks into separate rows",
                    rows=[rec.ref],
                    details={"marker": match.group(0).strip()[:60]},
                )
            )
    return out


_CODE_REF = re.compile(
    r"\b(?:this|the following|the given|given|the below|the above|the provided)\s+(?:\w+\s+)?"
    r"(?:code|program|function|snippet|(?:python|java|javascript|sql|bash|shell) script|sql query|method)\b"
    r"|\b(?:code|program|function|snippet)\s+(?:below|provided|given)\b",
    re.IGNORECASE,
)
_LANGS = (
    r"(?:python|java|javascript|typescript|c\+\+|c#|c|sql|html|css|ruby|go|golang|rust|php|swift|kotlin|bash|shell|r|matlab|scala|perl)"
)
_CODE_ASK = re.compile(
    rf"\b(?:write|create|generate|implement|construct|develop|compose)\s+(?:a|an|the|some)?\s*"
    rf"(?:\w+\s+){{0,3}}?(?:{_LANGS}\s+(?:code|program|function|script|query|class|method)|program|"
    rf"function|snippet|piece of code|code snippet|sql query)\b",
    re.IGNORECASE,
)
# a function in math notation, "f(x) = x + 5": "the given function" is there (Alpaca: "provide a valid array of numbers
# as input to the given function", answered by a JSON list)
_MATH_FUNCTION = re.compile(r"\b[a-zA-Z]\w?\s*\(\s*[a-z]\w*(?:\s*,\s*[a-z]\w*)*\s*\)\s*=\s*\S")
_CODE_TOKENS = re.compile(
    r"[{};]|\bdef |\breturn\b|\bfunction\b|\bimport |\bprint\s*\(|\bSELECT\b|\bFROM\b|"
    r"\bfor\s*\(|\bfor \w+ in\b|\bwhile\s*\(|#include|=>|console\.log|\bpublic\b|\bint \w|"
    r"\w+\([^()]*\)|\w+\s*=\s*\S|</?\w+>|```"
)


_STRONG_CODE = re.compile(
    r"console\.log|\bdef \w+\(|#include|```|\bprint\s*\(|\bSELECT\b[\s\S]+\bFROM\b|"
    r"\bfunction\s*\w*\s*\(|\bpublic\s+(?:static|class|void)|=>|^\s*import \w+",
    re.IGNORECASE | re.MULTILINE,
)


def looks_like_code(text: str) -> bool:
    """One unmistakable code construct, or two distinct code tokens (braces, assignments, calls...)."""
    if _STRONG_CODE.search(text):
        return True
    return len({m.group(0).strip()[:6] for m in _CODE_TOKENS.finditer(text)}) >= 2


@register("DOC030", "instruct.code_missing")
def code_missing(ctx: CheckContext) -> list[Finding]:
    """Code tasks without the code: "fix this function" with no function, "write a program" answered in prose.

    Anti-pattern (Alpaca): the code was lost when the data was generated; the answer describes
    code that is not there. Fix: add the code or drop the row.
    """
    if not prompt_is_instruction(ctx):
        return []  # "this program" in a customer query, "this dress code" in a post: not a code task
    out = []
    for rec in ctx.records:
        instruction, extra, answer = instruction_parts(rec, ctx)
        prompt = rec.prompt
        ref = _CODE_REF.search(instruction)
        given = prompt.replace(instruction, "", 1) if extra else instruction[ref.end() :] if ref else ""
        if ref and not looks_like_code(given) and not ("function" in ref.group(0).lower() and _MATH_FUNCTION.search(given)):
            where, phrase = "prompt", ref.group(0)
        else:
            ask = _CODE_ASK.search(instruction)
            if not ask or looks_like_code(answer):
                continue
            where, phrase = "answer", ask.group(0)
        out.append(
            found(
                Severity.WARNING,
                f"code task ({phrase.strip()!r}) but the {where} contains no code",
                "add the code the task is about, or drop the row",
                rows=[rec.ref],
                details={"missing_in": where},
            )
        )
    return out
