"""Records in, written text out: the delexicalised nearest neighbour (the data-to-text practitioner's first try).

When each prompt is a record of fields (``name[The Eagle], food[French]``, ``name: The Eagle | food:
French`` or a JSON object) and the answer is text written from it, the cheap system a team ships
first is retrieval with slot filling: take the training answer whose record has the most similar
set of fields, cut that record's values out of its text (delexicalise) and put this record's values
in. It is the retrieval baseline of the E2E NLG challenge papers and what template-based generators
learn; a fine-tune has to beat it to be worth running.

How the neighbour is chosen (all on the parsed records, no model):

1. a training value found verbatim in its answer becomes a slot (longest values first); a value
   not found (``familyFriendly[yes]`` written "kid friendly") stays written in the template, so a
   neighbour whose unslotted value differs from this record's value would state a wrong fact;
2. candidates score ``+1`` per field both records have, ``-1`` per field only one has and ``-1``
   per written-in value that differs; a template with a slot this record cannot fill is skipped;
3. among the best-scoring candidates (the first ``MAX_CANDIDATES``), the wording with the highest
   mean ROUGE-L against the others' (slots compared by field name, not value) wins: the consensus
   wording, as in minimum-Bayes-risk decoding, so the choice does not hang on one odd neighbour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from tunerail.data.record_prompts import parse_record  # one record parser, shared with the doctor
from tunerail.eval.alternatives.base import Alternative, FitData

MAX_CANDIDATES = 50  # best-scoring neighbours compared by consensus (ROUGE-L among them is quadratic)


@dataclass
class Template:
    """One training answer with its record's values cut out, its slots keyed by field occurrence."""

    text: str  # with slots written as \x00S<index>S\x00
    fields: tuple[str, ...]  # the record's field names, in order (a field may repeat)
    slots: tuple[tuple[str, int], ...]  # (field, occurrence) of each slot index
    written: frozenset[tuple[str, str]]  # (field, value) pairs that stayed written in the text


def _occurrences(record: Sequence[tuple[str, str]]) -> list[tuple[str, int, str]]:
    """``(field, n, value)``: the n-th value of a field that repeats (E2E's ``eatType[...]`` twice)."""
    seen: dict[str, int] = {}
    out = []
    for key, value in record:
        out.append((key, seen.get(key, 0), value))
        seen[key] = seen.get(key, 0) + 1
    return out


def delexicalise(record: Sequence[tuple[str, str]], answer: str) -> Template:
    """Cut each value found verbatim (case-insensitive, whole words) out of ``answer``; the rest stays written."""
    text, slots, written = answer, list[tuple[str, int]](), set[tuple[str, str]]()
    for key, n, value in sorted(_occurrences(record), key=lambda o: -len(o[2])):
        pattern = re.compile(rf"(?<!\w){re.escape(value)}(?!\w)", re.IGNORECASE) if value else None
        if pattern is None or not pattern.search(text):
            written.add((key, value))
            continue
        text = pattern.sub(f"\x00S{len(slots)}S\x00", text)  # letters round the digits: a value "1" cannot match inside
        slots.append((key, n))
    return Template(text, tuple(k for k, _ in record), tuple(slots), frozenset(written))


def _score(record: Sequence[tuple[str, str]], tpl: Template) -> float | None:
    """Fields shared minus fields on one side only minus written-in values that differ; None if a slot cannot be filled."""
    have = {(k, n) for k, n, _ in _occurrences(record)}
    if any(slot not in have for slot in tpl.slots):
        return None
    mine, theirs = set(k for k, _ in record), set(tpl.fields)
    values = dict(record)
    wrong = sum(1 for k, v in tpl.written if k in values and values[k].lower() != v.lower())
    return len(mine & theirs) - len(mine ^ theirs) - wrong


def fill(record: Sequence[tuple[str, str]], tpl: Template) -> str:
    """The template with this record's values in its slots."""
    values = {(k, n): v for k, n, v in _occurrences(record)}
    return re.sub("\x00S(\\d+)S\x00", lambda m: values[tpl.slots[int(m.group(1))]], tpl.text)


def _lcs_f(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-L F-measure of two token lists (longest common subsequence, as rouge-score computes it)."""
    if not a or not b:
        return 0.0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    return 2 * lcs / (len(a) + len(b))


def _canonical_tokens(tpl: Template, tokenize: Callable[[str], list[str]]) -> list[str]:
    """The template's rouge-score tokens with each slot written as its field name, so wordings compare without values."""
    names = {str(i): re.sub(r"\W", "", f"slot{key}{n}") for i, (key, n) in enumerate(tpl.slots)}
    return tokenize(re.sub("\x00S(\\d+)S\x00", lambda m: f" {names[m.group(1)]} ", tpl.text))


def _consensus(tokens: Sequence[Sequence[str]]) -> int:
    """Index of the wording with the highest summed ROUGE-L F against the others (the first on a tie)."""
    if len(tokens) < 3:
        return 0
    totals = [0.0] * len(tokens)
    for i in range(len(tokens)):
        for j in range(i + 1, len(tokens)):
            f = _lcs_f(tokens[i], tokens[j])
            totals[i] += f
            totals[j] += f
    return max(range(len(tokens)), key=lambda i: totals[i])


def fit_delex_neighbour(data: FitData) -> tuple[list[str], dict[str, Any]]:
    """Answer each test record with its best-matching training template, filled with the record's values."""
    templates = []
    for prompt, answer in zip(data.fit_prompts, data.fit_answers):
        record = parse_record(prompt)
        if record is not None:
            templates.append(delexicalise(record, answer))
    if not templates:
        raise ValueError("no training prompt parses as a record (key[value], key: value, or a JSON object)")
    from rouge_score.tokenizers import DefaultTokenizer

    tokenizer = DefaultTokenizer(use_stemmer=True)  # the eval's ROUGE tokens (lower case, Porter stems)
    tokens = [_canonical_tokens(t, tokenizer.tokenize) for t in templates]
    chosen: dict[tuple[int, ...], int] = {}  # test records with the same best candidates share the consensus
    out, unfilled = [], 0
    for prompt in data.test_prompts:
        record = parse_record(prompt) or []
        scored = [(s, k) for k, t in enumerate(templates) if (s := _score(record, t)) is not None]
        if not scored:  # no template fits: the record's values, so the answer still states them
            unfilled += 1
            out.append(", ".join(v for _, v in record))
            continue
        best = max(s for s, _ in scored)
        candidates = tuple(k for s, k in scored if s == best)[:MAX_CANDIDATES]
        if candidates not in chosen:
            chosen[candidates] = candidates[_consensus([tokens[k] for k in candidates])]
        out.append(fill(record, templates[chosen[candidates]]))
    details = {"templates": len(templates), "fit_rows": len(data.fit_prompts), "no_template": unfilled, "candidate_sets": len(chosen)}
    return out, details


DELEX_NEIGHBOUR = Alternative(
    "delex_neighbour",
    "nearest training record's answer with this record's values (delexicalised)",
    "tunerail (no model)",
    "a template lookup: your training answers with their values cut out, filled with each new record's values",
    fit_delex_neighbour,
)
