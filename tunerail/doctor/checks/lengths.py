"""Lengths and answer completeness: truncation at ``max_seq_length``, empty, short and cut-off answers.

Token counts use the target model's own tokenizer with its chat template applied (see
``tunerail.doctor.tokens``), because that is what training truncates.
"""

from __future__ import annotations

import re

from tunerail.data.records import Record
from tunerail.doctor.checks._common import answer_field, excerpt, found, is_generation
from tunerail.doctor.checks.instruct import looks_like_code
from tunerail.doctor.context import CheckContext
from tunerail.doctor.registry import register
from tunerail.findings import Finding, Severity
from tunerail.prompting import LOSS_KINDS, encode_parts, fit_parts, pick_template


@register("DOC015", "lengths.truncated", needs=("tokenizer",))
def truncated(ctx: CheckContext) -> list[Finding]:
    """Rows longer than ``model.max_seq_length`` tokens: training cuts them (``tunerail.prompting.fit_parts``).

    Anti-pattern: the model learns from answers with the ending cut off, or from chats whose
    earlier turns are gone. Fix: raise ``model.max_seq_length`` (costs memory and time), shorten
    the rows, or drop them. The counts come from the same rendering and cut as training.
    """
    limit = ctx.config.model.max_seq_length
    out = []
    for rec, n in zip(ctx.records, ctx.token_lengths):
        if n > limit:
            out.append(
                found(
                    Severity.WARNING,
                    f"{n} tokens with the chat template, over model.max_seq_length={limit}: {_cut_summary(ctx, rec, limit)}",
                    f"raise model.max_seq_length to at least {n}, shorten the row, or drop it",
                    rows=[rec.ref],
                    details={"tokens": n, "max_seq_length": limit},
                )
            )
    return out


def _cut_summary(ctx: CheckContext, rec: Record, limit: int) -> str:
    """What training's cut removes from one row: answer tokens, earlier tokens, assistant turns left out of the loss."""
    parts = encode_parts(ctx.tokenizer, rec, pick_template(ctx.config))
    kept = fit_parts(parts, limit)
    answer_cut = len(parts[-1][0]) - len(kept[-1][0])
    start_cut = sum(len(p) for p, _ in parts[:-1]) - sum(len(p) for p, _ in kept[:-1])
    text = f"training cuts {answer_cut} token(s) from the end of the answer and {start_cut} from the start of the row"
    lost = sum(k == "turn" for _, k in parts) - sum(k == "turn" for _, k in kept)
    if lost and "turn" in LOSS_KINDS[ctx.config.train.loss_on]:
        text += f"; {lost} of its {sum(k == 'turn' for _, k in parts)} earlier assistant turn(s) leave the loss"
    return text


_ALNUM = re.compile(r"\w", re.UNICODE)


@register("DOC016", "lengths.empty_answer")
def empty_answer(ctx: CheckContext) -> list[Finding]:
    """Answers with no letter or digit at all (".", "-", "..."), i.e. empty in practice.

    Fix: write the answer or drop the row (``--fix`` drops it).
    """
    out = []
    for rec in ctx.records:
        if not _ALNUM.search(rec.completion):
            out.append(
                found(
                    Severity.ERROR,
                    f"field '{answer_field(rec, ctx)}' has no words: {rec.completion.strip()[:20]!r}",
                    "write the answer or drop the row (--fix drops it)",
                    rows=[rec.ref],
                    details={"fix_action": "drop"},
                )
            )
    return out


@register("DOC017", "lengths.short_answer")
def short_answer(ctx: CheckContext) -> list[Finding]:
    """Generated answers shorter than ``doctor.min_answer_chars`` non-space characters.

    Often fine ("Yes", a number), but a batch of one-character answers usually means a broken
    export. Fix: check the rows; raise or lower the threshold to match the task.
    """
    if not is_generation(ctx):
        return []
    limit = ctx.config.doctor.min_answer_chars
    out = []
    for rec in ctx.records:
        size = len("".join(rec.completion.split()))
        if 0 < size < limit and _ALNUM.search(rec.completion):
            out.append(
                found(
                    Severity.INFO,
                    f"answer is only {size} character(s): {rec.completion.strip()!r}",
                    "check the answer is complete; set doctor.min_answer_chars to suit the task",
                    rows=[rec.ref],
                    details={"chars": size},
                )
            )
    return out


_DANGLING = {
    "and",
    "or",
    "but",
    "the",
    "a",
    "an",
    "of",
    "to",
    "in",
    "for",
    "with",
    "on",
    "at",
    "by",
    "from",
    "that",
    "which",
    "is",
    "are",
    "was",
    "were",
    "as",
    "this",
    "their",
    "his",
    "her",
    "its",
    "our",
    "your",
    "my",
    "because",
    "such",
    "than",
    "into",
    "these",
    "those",
    "very",
    "will",
    "can",
}
_OPEN_END = (",", ":", "(", "[", "{", "/", "“", "‘", "-", "–", "&", "+", "=")
_CLOSED = (".", "!", "?", "…", "。", '"', "'", "”", "’", ")", "]", "}", "*", "`", ":", ";")
_WORDS = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)]|[A-Z]\.|[IVX]+\.)\s*")
_ATTRIBUTION = re.compile(r"[.!?\"”’']\s*[-–—]+\s*\w[\w .'-]*$")  # a quote's author: "... world." - Gandhi
_SIGN_OFF = re.compile(
    r"^(?:sincerely|regards|best|best regards|kind regards|warm regards|yours|yours truly|thanks|thank you|cheers|love|respectfully)\b.{0,20}$",
    re.I,
)
_SENTENCE_END = re.compile(r"[.!?]\s+(?=\S)")


_NUMBER = re.compile(r"-?\d[\d,.]*%?")
_FINAL_ANSWER = re.compile(
    r"^(?:#{2,}|(?:so,? )?(?:the )?(?:final )?(?:answer|result|total)(?: is)?:?|=)\s*[$€£]?-?\d[\d,./]*\s*\S{0,12}$", re.I
)


def cut_off_reason(answer: str, min_words: int = 12) -> str | None:
    """Why ``answer`` looks cut off, or None.

    Signals, in order: an odd number of code fences; a last character that opens something
    (comma, colon, bracket); a last word that cannot end an English sentence ("the", "and");
    then, for a last line without closing punctuation: the earlier lines or sentences of the
    same answer do close theirs, or it is a prose line of ``min_words`` words or more.
    Hashtag lines, tables and code are left alone (they legitimately end without a full stop).
    """
    if answer.count("```") % 2:
        return "unbalanced ``` code fence"
    text = answer.rstrip()
    if not text:
        return None
    if text.endswith(_OPEN_END) and not text.endswith(("--", ":-)")):
        return f"ends with {text[-1]!r}"
    raw_lines = [line for line in text.splitlines() if line.strip()]
    if raw_lines[-1][:1] in (" ", "\t") and len(raw_lines) > 1:
        return None  # indented last line: code or verse layout
    lines = [line.strip() for line in raw_lines]
    last_line = lines[-1]
    words = _WORDS.findall(last_line)
    if not words or not text[-1].isalnum():
        return None
    if (
        re.search(r"(?:https?://|www\.)\S+$", last_line)
        or "#" in last_line.split()[-1]
        or "|" in last_line
        or "```" in text
        or _ATTRIBUTION.search(last_line)
    ):
        return None
    if len(lines) > 1 and _SIGN_OFF.match(lines[-2]):
        return None  # a letter's signature
    if looks_like_code(last_line):
        return None  # code ends without prose punctuation
    if _FINAL_ANSWER.match(last_line) or (_NUMBER.fullmatch(words[-1]) and len(words) <= 6):
        return None  # a final answer line ("#### 72", "The answer is 18", "Total: $4.50"): math data ends so
    if words[-1].lower() in _DANGLING and len(words) >= 3:
        return f"ends with the word {words[-1]!r}"
    prior = lines[:-1]
    if len(words) >= 2 and prior and sum(line.endswith(_CLOSED) for line in prior) / len(prior) > 0.5:
        return "last line has no closing punctuation, unlike the lines before it"
    body = _LIST_ITEM.sub("", last_line)
    tail = _SENTENCE_END.split(body)[-1]
    if tail != body and len(_WORDS.findall(tail)) >= 3:
        return "last sentence has no closing punctuation"
    if len(words) >= min_words and not _LIST_ITEM.match(last_line):
        return "long last sentence has no closing punctuation"
    return None


@register("DOC018", "lengths.cut_off")
def cut_off(ctx: CheckContext) -> list[Finding]:
    """Answers that stop mid-sentence or leave a code fence open: a generation or export cut them.

    Anti-pattern: answers truncated by an upstream max-token limit teach the model to stop
    mid-thought. Fix: regenerate or complete the answers, or drop the rows.
    """
    if not is_generation(ctx):
        return []
    out = []
    for rec in ctx.records:
        reason = cut_off_reason(rec.completion)
        if reason:
            out.append(
                found(
                    Severity.WARNING,
                    f'answer looks cut off ({reason}): "…{excerpt(rec.completion, 60, tail=True)}"',
                    "complete or regenerate the answer, or drop the row",
                    rows=[rec.ref],
                    details={"reason": reason},
                )
            )
    return out
