"""Lengths and answer completeness: truncation at ``max_seq_length``, empty, short and cut-off answers.

Token counts use the target model's own tokenizer with its chat template applied (see
``tunerail.doctor.tokens``), because that is what training truncates.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from tunerail.data.record_prompts import parse_record, unstated_values
from tunerail.data.records import Record
from tunerail.doctor.checks._common import answer_field, excerpt, found, is_generation
from tunerail.doctor.checks.code_shape import python_code, python_cut_reason
from tunerail.doctor.checks.answer_shape import LIST_ITEM, fewer_cells, fewer_items, runs_over_lines
from tunerail.keywords import keyword_prompt, uses_every_keyword
from tunerail.doctor.checks.instruct import looks_like_code
from tunerail.doctor.checks.word_ends import DANGLING, end_shares, rarely_ends
from tunerail.doctor.checks.word_starts import AFTER_NUMBER_ODDS, START_ODDS, WORDS, WordCounts, data_counts, general_zipf, start_odds
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


_OPEN_END = (",", ":", "(", "[", "{", "/", "“", "‘", "-", "–", "&", "+", "=")
_CLOSED = (".", "!", "?", "…", "。", '"', "'", "”", "’", ")", "]", "}", "*", "`", ":", ";")
# a line that ends a sentence, as evidence of the row's own style: not a heading's ":" nor a list item's "($16)"
_SENTENCE_CLOSED = re.compile(r"[.!?…。][\"'”’)\]*]*$")
_WORDS = WORDS
_ATTRIBUTION = re.compile(r"[.!?\"”’']\s*[-–—―]+\s*\w[\w .,'-]*$")  # a quote's author: "... world." - Gandhi
_SIGN_OFF = re.compile(
    r"^(?:sincerely|regards|best|best regards|kind regards|warm regards|yours|yours truly|thanks|thank you|cheers|love|respectfully)\b.{0,20}$",
    re.I,
)
# a sentence's end, not an initial's or a short title's full stop ("U.S. that", "St. Nicholas", "No. I am", "Roy T. Bennett")
_SENTENCE_END = re.compile(r"(?<!\b[A-Z])(?<!\b[A-Z][a-z])[.!?]\s+(?=\S)")
# an attribution on its own line after a quotation: "... than you imagine.”\n― Roy T. Bennett, The Light in the Heart"
_ATTRIBUTION_LINE = re.compile(r"^[–—―]+\s*\w")
_URL_END = re.compile(r"(?:https?://|www\.)\S+$")  # a link ends where it ends, slash or not
_OR_MORE = re.compile(r"(?:\d|C\+?)\+$")  # "17+" (or more), "C++": no open operation


_NUMBER = re.compile(r"-?\d[\d,.]*%?")
_FINAL_ANSWER = re.compile(
    r"^(?:#{2,}|(?:so,? )?(?:the )?(?:final )?(?:answer|result|total)(?: is)?:?|=)\s*[$€£]?-?\d[\d,./]*\s*\S{0,12}$", re.I
)
# "... pay $100-$38" or "5 vans x 28": an operation whose result never came (a finished one says "= 62")
# (a "/" between digits alone is a fraction or a date: "1/2 cup", "the 9/11 attacks")
_OPEN_OPERATION = re.compile(r"[$€£]?\d[\d,.]*(?:\s+[a-z]+)?\s*(?:[-+*x×÷]|(?<!\d)/|/(?!\d))\s*[$€£]?\d[\d,.]*%?(?:\s+[a-z]+)?$")
_CALCULATOR = re.compile(r"<<[^<>\n]{1,80}>>")  # GSM8K's calculator annotations, "<<48/2=24>>": not code
PUNCTUATED_SHARE = 0.75  # answers ending in closing punctuation, at or above which a missing one is a signal
MIN_CLOSING_ROWS = 20  # answers whose earlier lines close, fewer than which cannot show a style of closing the last one
# In punctuated data, an unpunctuated sentence (not a title or a list) of this many words was cut. Chosen on
# Alpaca with 5 % planted cuts: 4 words finds 85.7 % of them and flags 1.0 % of clean rows (6: 81.9 %, 0.8 %).
PROSE_WORDS = 4


@dataclass(frozen=True)
class AnswerStyle:
    """How a dataset's answers end, learned from the data, so that its style is not taken for a defect.

    ``punctuated``: at least ``PUNCTUATED_SHARE`` of the answers end with closing punctuation (prose);
    when not (worked math answers ending "= 990 beetles", code, lists), a missing full stop says
    nothing and only the strong signals count. ``vocabulary``: words found in at least two rows; a
    last word outside it was cut ("5 vans x 28 studen"). Empty: no vocabulary test (too few rows).
    ``words``: the data's word counts (:func:`~tunerail.doctor.checks.word_starts.start_odds`).
    ``last_line_closes``: at least ``PUNCTUATED_SHARE`` of the answers whose earlier lines end a
    sentence close their last line too, so that a row's own closed sentences are evidence even in
    data of mixed answers (labels, lists, code beside prose). ``multi_line``: at least
    ``answer_shape.MULTI_LINE_SHARE`` of the answers (of ``MIN_VOCABULARY_ROWS`` or more) run over several lines, as
    worked answers do (GSM8K: every one), so that one stopping on its first line was cut. ``ends``: the
    share of each common word's uses that end a sentence or a line (:func:`~tunerail.doctor.checks.word_ends.end_shares`).
    ``python``: the data's code answers are Python (:func:`~tunerail.doctor.checks.code_shape.python_code`), so the
    parser judges a code answer's end.
    """

    punctuated: bool = True
    vocabulary: frozenset[str] = frozenset()
    language: str = "en"
    words: WordCounts | None = None
    last_line_closes: bool = True
    multi_line: bool = False
    ends: Mapping[str, float] | None = None
    python: bool = False


# wordfreq's Zipf frequency (log10 per billion words) a word needs to count as real: rare long words pass
# ("doorbells" 2.0; cut: "studen" 1.5, "altogeth" 0); a short one must be common ("tube" 4.4; cut: "hou" 3.1, "bu" 3.5)
MIN_ZIPF, MIN_ZIPF_SHORT = 1.8, 4.0


def _is_cut_word(word: str, style: AnswerStyle, context: str) -> bool:
    """A last word found neither in the data (``style.vocabulary``, the row's own ``context``) nor in wordfreq's list."""
    if len(word) == 1:  # "... over the r", a new line of just "T": not a, I, nor a variable
        return word.isalpha() and word not in ("a", "i", "n", "x", "y", "z")
    if not style.vocabulary or not word.isalpha() or word in style.vocabulary:
        return False
    from wordfreq import zipf_frequency  # loads its word lists (0.5 s): only when a last word is unknown to the data

    zipf = zipf_frequency(word, style.language)
    if word in _WORDS.findall(context.lower()) or zipf >= (MIN_ZIPF_SHORT if len(word) <= 4 else MIN_ZIPF):
        return False
    # a short word the list knows but seldom sees ("eel", "neon") is cut only when it mostly starts longer words ("hou")
    return len(word) > 4 or zipf < MIN_ZIPF or start_odds(word, style.language) >= START_ODDS


MIN_VOCABULARY_ROWS = 200  # a vocabulary of fewer rows misses too many real words to judge a last word by it


def answer_style(answers: Sequence[str], prompts: Sequence[str], language: str = "en") -> AnswerStyle:
    """The :class:`AnswerStyle` of a dataset from its answers and prompts (each read up to 4,000 characters)."""
    ends = [text.rstrip()[-1:] for text in answers if text.strip()]
    punctuated = not ends or sum(not c.isalnum() for c in ends) / len(ends) >= PUNCTUATED_SHARE
    vocabulary: frozenset[str] = frozenset()
    if len(answers) >= MIN_VOCABULARY_ROWS:
        df: Counter[str] = Counter()
        for text in (*answers, *prompts):
            df.update(set(_WORDS.findall(text[:4000].lower())))
        need = max(2, round(0.0005 * len(answers)))  # a cut word ("pe", "th") turns up in a few rows of a large set
        vocabulary = frozenset(w for w, n in df.items() if n >= need)
    closing = [c for c in map(_last_line_closes, answers) if c is not None]
    # too few answers of several closed lines say nothing (TruthfulQA: "No. I am your father"): the data's ends decide
    last_line_closes = sum(closing) >= PUNCTUATED_SHARE * len(closing) if len(closing) >= MIN_CLOSING_ROWS else punctuated
    multi_line = len(answers) >= MIN_VOCABULARY_ROWS and runs_over_lines(answers)
    counts = data_counts([*answers, *prompts]) if vocabulary else None
    shares = end_shares([*answers, *prompts]) if vocabulary else None
    return AnswerStyle(punctuated, vocabulary, language, counts, last_line_closes, multi_line, shares, python_code(answers))


def _last_line_closes(text: str) -> bool | None:
    """For an answer of several lines most of whose earlier lines close with punctuation: does its last one?"""
    lines = [line.strip() for line in text[:4000].strip().splitlines() if line.strip()]
    if len(lines) < 2 or sum(bool(_SENTENCE_CLOSED.search(line)) for line in lines[:-1]) * 2 <= len(lines) - 1:
        return None
    return lines[-1].endswith(_CLOSED)


MAX_ZIPF_CAPITAL = 3.0  # a capitalised last word is judged only when rarely a word of its own ("Repor" 1.7; "Dam" 3.9)
# ... or when the data never uses it and it starts longer words this many times as often as it stands alone ("Mu"
# 970, "Ar" 1,637, "Ye" 239). On Alpaca (development, 5 plantings) 100 and 200 find 9 more cuts, 400 five; none flags a clean row.
CAPITAL_START_ODDS = 200.0


def _capital_may_be_cut(word: str, before: str, style: AnswerStyle) -> bool:
    """A capitalised last word may be a name ("Cirq") or a title's word ("Create a Dam"): judged when the data never
    uses it and it starts longer words ``CAPITAL_START_ODDS`` times as often, or else only after other words, and
    when wordfreq seldom sees it alone or it starts a new line of a longer answer (a sentence's "Th")."""
    if style.vocabulary and word not in style.vocabulary and start_odds(word, style.language, style.words) >= CAPITAL_START_ODDS:
        return True  # "Too Mu", "Ar" (of "Arabic"): never a word of the data, hundreds of times likelier the start of one
    if not _WORDS.search(before):
        return False
    return general_zipf(word, style.language) < MAX_ZIPF_CAPITAL or bool(re.search(r"\n\s*$", before))


def _starts_longer_word(last_line: str, words: list[str], style: AnswerStyle, prompt: str, before: str) -> bool:
    """A last word of letters ("doll", "Repor", not "NASA" nor "x2") that :func:`start_odds` finds far more often
    as the start of a longer word, and that the row does not use as a word elsewhere: the answer ``before`` it
    ("min" in "5 liters/min"), or, unless it follows a number (where the data's counts judge), the prompt (a name)."""
    word = words[-1]
    numbered = style.words is not None and len(words) > 1 and words[-2].isdigit() and words[-2] != "1"
    if (
        len(word) < 2 - numbered
        or not last_line.split()[-1].isalpha()
        or (word.isupper() and len(words) > 1)
        or (word[1:] and not word[1:].islower())
    ):
        return False
    last = word.lower()
    if numbered and any(m.group(1) != "1" for m in re.finditer(rf"(\d[\d,.]*|/)\s*{re.escape(last)}\b", before.lower())):
        return False  # the answer wrote "24 min" or "5 liters/min" before (not "1 liter")
    if not numbered and last in _WORDS.findall(f"{prompt} {before}".lower()):
        return False
    if word[0].isupper() and not _capital_may_be_cut(last, before, style):
        return False
    return start_odds(last, style.language, style.words, after_number=numbered) >= (AFTER_NUMBER_ODDS if numbered else START_ODDS)


_PAIRS = (("(", ")"), ("[", "]"), ("{", "}"), ("“", "”"), ('"', '"'))


def _unclosed(text: str) -> str | None:
    """An opening bracket or quote left open at the end ('println("Hello', "(see the ma"): more opened than
    closed, the last one opened after the last one closed, and on the last line (a code block's "{" on any).
    Only for an answer that stops on a word; a digit's double quote is an inch mark (12")."""
    if not text[-1:].isalnum():
        return None
    for left, right in _PAIRS:
        marks = re.sub(r'(?<=\d)"', "", text) if left == '"' else text
        last_left = marks.rfind(left)
        if left != "{" and last_left < marks.rfind("\n"):
            continue
        if marks.count(left) % 2 if left == right else marks.count(left) > marks.count(right) and last_left > marks.rfind(right):
            return f"an unclosed {left}"
    return None


def _looks_cut(text: str, lines: list[str], words: list[str]) -> bool:
    """Whether the last word may be judged by the vocabulary: not a one-word answer ("Cirq", "D"), not a
    name in a list ("... Lucifer, NCIS"), not a spelling ("in·tr·pruh·tay·shnz"). A capital counts only
    for a word that starts a new line ("...= 9 hours\nTheref")."""
    token, word = lines[-1].split()[-1], words[-1]
    if len(_WORDS.findall(text)) < 3 or not token.isalpha() or word.isupper() and len(word) > 1:
        return False
    if len(words) == 1:
        return len(lines) > 1
    if len(word) > 1:
        return word.islower()
    # a lone small letter after a word ("Starting f") was cut; a capital is a label ("coach B"), one after a sign a variable ("mx + b")
    return word.islower() and bool(re.search(r"[^\W\d_]", lines[-1].split()[-2]))


def _strong_reason(text: str, lines: list[str], words: list[str], style: AnswerStyle, context: str) -> str | None:
    """Signals that hold whatever the dataset's style: a dangling word, a cut word, a missing result."""
    last_line, last = lines[-1], words[-1].lower()
    if last in DANGLING and len(words) >= 3:
        return f"ends with the word {words[-1]!r}"
    if style.ends and rarely_ends(text, style.ends):
        return f"ends with {words[-1]!r}, a word the data's sentences and lines almost never end with"
    if _looks_cut(text, lines, words) and _is_cut_word(last, style, context + " " + text[:-1]):
        return f"ends with {words[-1]!r}, a word found neither in the data nor in a word list (cut mid-word)"
    if _starts_longer_word(lines[-1], words, style, context, text[: -len(words[-1])]):
        return f"ends with {words[-1]!r}, far more often the start of a longer word than a word of its own (cut mid-word)"
    if _OPEN_OPERATION.search(last_line) and "=" not in last_line[-40:]:
        return "ends with an operation and no result"
    return None


def _result_line(last_line: str) -> bool:
    """A worked step that ends in its result: "46 bags weigh 46*7kg = 322kg", "= $990.00 in total"."""
    after = last_line.rsplit("=", 1)[-1] if "=" in last_line else ""
    return bool(after) and any(c.isdigit() for c in after) and len(after.split()) <= 5


def cut_off_reason(answer: str, min_words: int = 12, style: AnswerStyle = AnswerStyle(), context: str = "") -> str | None:
    """Why ``answer`` looks cut off, or None: how its last line ends (:func:`_last_line_reason`), then its shape.

    Shape signals, for an answer that stops on a word: a list with fewer items than its prompt
    (``context``) asks for ("List five genetic diseases": two), a table whose last row has fewer cells
    than the rows above it (outside code), and a single line where the data's
    answers run over several (``style.multi_line``: a worked answer that stopped after its first step).
    """
    if style.python and "```" not in answer and (answer[:1] in (" ", "\t") or looks_like_code(answer[:4000])):
        return python_cut_reason(answer, context)
    reason = _last_line_reason(answer, min_words, style, context)
    text = _CALCULATOR.sub("", answer).strip()
    if reason or not text[-1:].isalnum() or "```" in text:
        return reason
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if short := fewer_items(lines, context) or (None if looks_like_code(text) else fewer_cells(lines)):
        return short
    if style.multi_line and len(lines) == 1 and len(_WORDS.findall(text)) >= 2 and not looks_like_code(text):
        return "one line where the data's answers run over several"
    return None


def _last_line_reason(answer: str, min_words: int = 12, style: AnswerStyle = AnswerStyle(), context: str = "") -> str | None:
    """Why ``answer`` looks cut off by how its last line ends, or None.

    Signals, in order: an odd number of code fences; a bracket or quote left open ('println("Hello');
    a last character that opens something (comma, colon, bracket); a last word that cannot end an
    English sentence ("the", "and"), that is found nowhere else in the data, that is far more often
    the start of a longer word than a word ("doll", "Repor"; after a number, by the data's own words:
    "= 30 section"), or an operation without its result ("$100-$38"); then, for a last line without
    punctuation: the earlier lines or sentences of the same answer close theirs (where the data's
    answers do so too, ``style.last_line_closes``), or, only where the dataset's answers normally end
    with punctuation (``style.punctuated``), it is a prose line of ``min_words`` words or more.
    Hashtag lines, tables and code are left alone. ``context`` (the row's prompt) holds the names a
    vocabulary of other rows lacks.
    """
    answer = _CALCULATOR.sub("", answer)
    if answer.count("```") % 2:
        return "unbalanced ``` code fence"
    text = answer.rstrip()
    if not text:
        return None
    if opened := _unclosed(text):
        return opened
    if text.endswith(_OPEN_END) and not text.endswith(("--", ":-)")) and not _URL_END.search(text) and not _OR_MORE.search(text):
        return f"ends with {text[-1]!r}"
    raw_lines = [line for line in text.splitlines() if line.strip()]
    if raw_lines[-1][:1] in (" ", "\t") and len(raw_lines) > 1:
        return None  # indented last line: code or verse layout
    lines = [line.strip() for line in raw_lines]
    last_line = lines[-1]
    words = _WORDS.findall(last_line)
    if not words or not text[-1].isalnum():
        return None
    if _URL_END.search(last_line) or "#" in last_line.split()[-1] or "|" in last_line or "```" in text or _ATTRIBUTION.search(last_line):
        return None
    if len(lines) > 1 and (_SIGN_OFF.match(lines[-2]) or _ATTRIBUTION_LINE.match(last_line) and lines[-2].endswith(_CLOSED)):
        return None  # a letter's signature, a quotation's author
    if looks_like_code(last_line):
        return None  # code ends without prose punctuation
    if _FINAL_ANSWER.match(last_line):
        return None  # a final answer line ("#### 72", "The answer is 18", "Total: $4.50"): math data ends so
    prior = lines[:-1]
    if "=" not in last_line and len(words) >= 2 and prior and sum("=" in line for line in prior) / len(prior) > 0.5:
        return "last line has no result, unlike the worked lines before it"
    if len(words) <= 2 and not _NUMBER.fullmatch(words[-1]) and prior and min(len(_WORDS.findall(line)) for line in prior) >= 6:
        return f"last line stops after {len(words)} word(s), the lines before it are sentences"
    if _NUMBER.fullmatch(words[-1]) and len(words) <= 6 and not _OPEN_OPERATION.search(last_line):
        return None  # a final answer line ("#### 72", "The answer is 18", "Total: $4.50"): math data ends so
    strong = _strong_reason(text, lines, words, style, context)
    if strong or _result_line(last_line) or not (style.punctuated or style.last_line_closes):
        return strong
    prior = lines[:-1]
    if len(words) >= 2 and prior and sum(bool(_SENTENCE_CLOSED.search(line)) for line in prior) / len(prior) > 0.5:
        return "last line has no closing punctuation, unlike the lines before it"
    body = LIST_ITEM.sub("", last_line)
    tail = _SENTENCE_END.split(body)[-1]
    if tail != body and len(_WORDS.findall(tail)) >= 3:
        return "last sentence has no closing punctuation"
    if not style.punctuated:
        return None
    if len(words) >= min_words and not LIST_ITEM.match(last_line):
        return "long last sentence has no closing punctuation"
    title = sum(w[:1].isupper() for w in words) * 2 > len(words)
    spaced = len(last_line.split())  # "john.smith@example.com", "collect_data_for_new_project": one token, no sentence
    if spaced >= PROSE_WORDS and not title and not LIST_ITEM.match(last_line) and "," not in last_line[-25:] and ":" not in last_line:
        return "last sentence has no closing punctuation, unlike most answers in the data"
    return None


def _row_style(style: AnswerStyle, rec: Record, records: bool) -> AnswerStyle:
    """Record- and keywords-to-text data: an answer that states every value or keyword is complete without a final stop.

    E2E's crowd-written descriptions end "... and is child friendly" one time in ten, CommonGen's
    sentences ("... to stop at the pit") as often; a cut one leaves the later values or keywords
    unsaid. So a row that says them all is judged by the strong signals only (a dangling "and",
    a cut word), as in data whose answers seldom end with a stop.
    """
    if records:
        record = parse_record(rec.prompt)
        complete = record is not None and not unstated_values(record, rec.completion)
    else:
        keywords = keyword_prompt(rec.prompt)
        complete = keywords is not None and uses_every_keyword(keywords, rec.completion)
    return replace(style, punctuated=False, last_line_closes=False) if complete else style


@register("DOC018", "lengths.cut_off")
def cut_off(ctx: CheckContext) -> list[Finding]:
    """Answers that stop mid-sentence, mid-word or inside an open code fence, bracket or quote: a generation or export cut them.

    Anti-pattern: answers truncated by an upstream max-token limit teach the model to stop
    mid-thought. Fix: regenerate or complete the answers, or drop the rows.
    """
    if not is_generation(ctx):
        return []
    language = ctx.config.doctor.language or "en"
    style = answer_style([rec.completion for rec in ctx.records], [rec.prompt for rec in ctx.records], language)
    records = ctx.prompts_are_records
    out = []
    for rec in ctx.records:
        reason = cut_off_reason(rec.completion, style=_row_style(style, rec, records), context=rec.prompt)
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
