"""JSON extraction answers <-> BIO-tagged tokens, for the span taggers (CRF, spaCy NER, MiniLM).

A JSON field becomes an entity label; each reference value found verbatim in its prompt tags the
tokens it covers ``B-field``/``I-field`` (every occurrence, first field wins an overlap). The taggers
predict tags for a test prompt and :meth:`SpanSchema.answer` rebuilds the answer JSON from the
predicted spans, with the fields in the references' order and each field a list or a single value
as in the references.

Tokens are ``\\w+`` runs (with inner ``-``/``'``) or single punctuation marks, with character
offsets, so a value such as ``Paris`` still aligns inside ``Paris,``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from tunerail.metrics import answer_object, bio_spans

TOKEN = re.compile(r"\w+(?:[-'’]\w+)*|[^\w\s]", re.UNICODE)


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """``(token, start, end)`` for each word or punctuation mark of ``text``."""
    return [(m.group(), m.start(), m.end()) for m in TOKEN.finditer(text)]


def field_values(value: Any) -> list[str]:
    """The non-empty string values of one field (a list field or a single value)."""
    items = value if isinstance(value, list) else [value]
    return [str(v) for v in items if v is not None and str(v).strip()]


@dataclass
class SpanSchema:
    """The fields of the training answers, their order and shape (list or single value)."""

    fields: list[str]
    list_fields: set[str] = field(default_factory=set)

    @classmethod
    def from_answers(cls, completions: Sequence[str]) -> "SpanSchema":
        order: dict[str, None] = {}
        shape: Counter[tuple[str, bool]] = Counter()
        for c in completions:
            data = answer_object(c) or {}
            for key, value in data.items():
                order.setdefault(str(key), None)
                shape[(str(key), isinstance(value, list))] += 1
        return cls(list(order), {k for k in order if shape[(k, True)] >= shape[(k, False)]})

    def tags(self, prompt: str, completion: str) -> tuple[list[tuple[str, int, int]], list[str]]:
        """The prompt's tokens and their BIO tags from the answer's values found in the prompt."""
        tokens = tokenize(prompt)
        tags = ["O"] * len(tokens)
        starts = {s: i for i, (_, s, _) in enumerate(tokens)}
        ends = {e: i for i, (_, _, e) in enumerate(tokens)}
        data = answer_object(completion) or {}
        for key in self.fields:
            for value in field_values(data.get(key)):
                for m in re.finditer(re.escape(value), prompt):
                    first, last = starts.get(m.start()), ends.get(m.end())
                    if first is None or last is None or any(t != "O" for t in tags[first : last + 1]):
                        continue  # not on token boundaries, or overlaps a span already tagged
                    tags[first] = f"B-{key}"
                    for i in range(first + 1, last + 1):
                        tags[i] = f"I-{key}"
        return tokens, tags

    def answer(self, prompt: str, tokens: Sequence[tuple[str, int, int]], tags: Sequence[str]) -> str:
        """The answer JSON from predicted tags: each span's text as written in the prompt."""
        spans = sorted(bio_spans(tags), key=lambda s: s[1])
        return self.render((kind, prompt[tokens[first][1] : tokens[last - 1][2]]) for kind, first, last in spans)

    def render(self, spans: Iterable[tuple[str, str]]) -> str:
        """The answer JSON from ``(field, text)`` spans in reading order; unknown fields are ignored, repeats kept once."""
        found: dict[str, list[str]] = {k: [] for k in self.fields}
        for kind, text in spans:
            if kind in found and text not in found[kind]:
                found[kind].append(text)
        out = {k: (v if k in self.list_fields else (v[0] if v else None)) for k, v in found.items()}
        return json.dumps(out, ensure_ascii=False)

    def char_spans(self, prompt: str, completion: str) -> list[tuple[int, int, str]]:
        """``(start, end, field)`` character spans of the tagged values (spaCy's training format)."""
        tokens, tags = self.tags(prompt, completion)
        return [(tokens[first][1], tokens[last - 1][2], kind) for kind, first, last in sorted(bio_spans(tags), key=lambda s: s[1])]
