"""Span-copy decoding for extraction: every JSON string value the model writes is copied from its prompt.

Where the reference values are spans of the input (``alternatives/shape.py``: "spans"), a value the
model invents or misspells can only lose field F1. While the model writes a JSON string VALUE, a
logits processor keeps only the tokens after which the value is still a substring of the prompt
(as JSON escapes it: ``"`` -> ``\\"``, with or without ``\\uXXXX`` for non-ASCII), starting at a
word boundary, plus the closing quote where the value also ends at one. Keys are free; between
strings only JSON punctuation, whitespace, numbers and true/false/null. This is the span analogue of
the label trie that classification decodes with (``generate.generate_constrained``).

Cost, per prompt and step (never a scan of the 49k-token vocabulary in Python):

- once per tokenizer: each token's bytes (byte-level BPE or SentencePiece), a map bytes -> ids of
  the "plain" tokens (no ``"`` or ``\\``) and the set of their prefixes;
- once per prompt (:class:`SpanIndex`): for every byte position of the escaped prompt, the plain
  tokens that match there (stops as soon as no token has that prefix);
- each step inside a value: the positions where the value so far ends in the prompt, the plain
  tokens starting there, and the ~200 tokens holding a quote or backslash simulated through the
  lexer (:class:`JsonCursor`); outside a value only those ~200, cached per lexer state.

Bytes, not characters: leading-space tokens (``Ġpark``), tokens holding half of a UTF-8 character
and case all compare exactly as written in the prompt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

VERSION = 2  # in the eval cache key: a change to the rules must not serve answers decoded under the old ones
QUOTE, BACKSLASH = 0x22, 0x5C
OPEN = frozenset(b"{[")
CLOSE = frozenset(b"}]")
# Bytes JSON may hold outside a string: punctuation, whitespace, numbers, true/false/null. Without
# this, a model refused a value could write it unquoted (`["D"" Thunderbolt 3 ""]`, measured).
STRUCTURAL = frozenset(b" \t\n\r,:[]{}0123456789.-+eEtruefalsn")


@dataclass
class JsonCursor:
    """Where an incremental JSON text stands: the open containers, and whether inside a key or value string.

    Lenient by design (the model's text may be malformed): it only needs to know, byte by byte,
    whether a byte belongs to a string value and which value it extends.
    """

    stack: list[int] = field(default_factory=list)
    in_str: bool = False
    is_key: bool = False
    esc: bool = False
    expect_key: bool = False
    content: bytes = b""

    @property
    def in_value(self) -> bool:
        return self.in_str and not self.is_key

    def copy(self) -> "JsonCursor":
        return JsonCursor(list(self.stack), self.in_str, self.is_key, self.esc, self.expect_key, self.content)

    def signature(self) -> tuple[Any, ...]:
        """Everything the next bytes' validity depends on, outside a value string."""
        return (self.stack[-1] if self.stack else None, self.in_str, self.is_key, self.esc, self.expect_key)

    def feed(self, data: bytes, span: "SpanIndex | None" = None) -> bool:
        """Advance over ``data``; with ``span``, False when a value stopped being a span of its prompt or text left the JSON."""
        start = len(self.content)
        for c in data:
            if self.in_str:
                if self.esc:
                    self.esc = False
                elif c == BACKSLASH:
                    self.esc = True
                elif c == QUOTE:
                    self.in_str = False
                    if span is not None and not self.is_key and not span.occurs(self.content, whole=True):
                        return False
                    continue
                self.content += bytes((c,))
            elif c == QUOTE:
                self.in_str, self.esc, self.content, start = True, False, b"", 0
                self.is_key = bool(self.stack) and self.stack[-1] == 0x7B and self.expect_key
            elif span is not None and c not in STRUCTURAL:
                return False
            else:
                self._structure(c)
        return span is None or not self.in_value or len(self.content) == start or span.occurs(self.content)

    def _structure(self, c: int) -> None:
        if c in OPEN:
            self.stack.append(c)
            self.expect_key = c == 0x7B
        elif c in CLOSE:
            if self.stack:
                self.stack.pop()
            self.expect_key = False
        elif c == 0x2C:  # ,
            self.expect_key = bool(self.stack) and self.stack[-1] == 0x7B
        elif c == 0x3A:  # :
            self.expect_key = False


@dataclass(frozen=True)
class Vocab:
    """The tokenizer's tokens as bytes, split into plain ones (indexed by their bytes) and special ones."""

    size: int
    plain: dict[bytes, tuple[int, ...]]  # bytes without " or \ -> token ids
    prefixes: frozenset[bytes]  # every prefix of a plain token's bytes
    special: tuple[tuple[int, bytes, bytes], ...]  # (id, bytes, the bytes before the first " or \)
    longest: int
    by_id: dict[int, bytes]  # every non-special token's bytes
    structural: tuple[int, ...]  # plain tokens JSON may hold outside a string (whitespace, , : [ ] { }, numbers)


def token_bytes(tokenizer: Any) -> list[bytes | None]:
    """Each token id's bytes as it appears mid-text; None for added/special tokens (``<|im_end|>``).

    Byte-level BPE (GPT-2, SmolLM2, Llama 3, Qwen) maps bytes to printable characters; SentencePiece
    (Llama 2, Mistral) writes ``▁`` for a space and ``<0xNN>`` for byte fallback.
    """
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    special = set(getattr(tokenizer, "all_special_ids", [])) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    to_byte = {ch: b for b, ch in _bytes_to_unicode().items()}
    byte_level = any(t and "Ġ" in t for t in vocab[:5000])
    out: list[bytes | None] = []
    for i, t in enumerate(vocab):
        if t is None or i in special:
            out.append(None)
        elif byte_level:
            out.append(bytes(to_byte[ch] for ch in t) if all(ch in to_byte for ch in t) else None)
        elif len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
            out.append(bytes((int(t[3:5], 16),)))
        else:
            out.append(t.replace("▁", " ").encode())
    return out


def build_vocab(tokenizer: Any) -> Vocab:
    """Index the vocabulary once per tokenizer (cached on the tokenizer object)."""
    cached = getattr(tokenizer, "_tunerail_span_vocab", None)
    if isinstance(cached, Vocab):
        return cached
    plain: dict[bytes, list[int]] = {}
    special: list[tuple[int, bytes, bytes]] = []
    for i, b in enumerate(token_bytes(tokenizer)):
        if not b:
            continue
        cut = min((k for k in (b.find(b'"'), b.find(b"\\")) if k >= 0), default=-1)
        if cut < 0:
            plain.setdefault(b, []).append(i)
        else:
            special.append((i, b, b[:cut]))
    prefixes = frozenset(b[:k] for b in plain for k in range(1, len(b) + 1))
    by_id = {tid: b for b, ids in plain.items() for tid in ids} | {tid: b for tid, b, _ in special}
    structural = tuple(sorted(t for b, ids in plain.items() if set(b) <= STRUCTURAL for t in ids))
    vocab = Vocab(
        len(tokenizer), {b: tuple(ids) for b, ids in plain.items()}, prefixes, tuple(special), max(map(len, plain)), by_id, structural
    )
    try:
        tokenizer._tunerail_span_vocab = vocab
    except AttributeError:  # a tokenizer that refuses attributes: rebuilt per call
        pass
    return vocab


def escaped(text: str) -> bytes:
    """The text as a JSON string body, in both conventions (non-ASCII raw and as ``\\uXXXX``), NUL-separated."""
    forms = dict.fromkeys([json.dumps(text, ensure_ascii=False)[1:-1], json.dumps(text)[1:-1]])
    return b"\x00".join(f.encode() for f in forms)


def _word(c: int) -> bool:
    """A letter or digit (any non-ASCII byte counts: it belongs to a UTF-8 letter more often than not)."""
    return c >= 0x80 or chr(c).isalnum()


class SpanIndex:
    """One prompt's escaped text and, per byte position, the plain tokens that match there.

    A span starts and ends at a word boundary (as a tagger's spans do): a value refused its first
    choice must not settle for half a word ("Ma" of "May", measured on WNUT-17).
    """

    def __init__(self, source: str, vocab: Vocab):
        self.haystack = h = escaped(source)
        self.starts = [i == 0 or (i < len(h) and not _word(h[i - 1])) for i in range(len(h) + 1)]
        self.ends = [j == len(h) or not _word(h[j]) for j in range(len(h) + 1)]
        self.at: list[tuple[int, ...]] = []
        for i in range(len(h) + 1):
            ids: list[int] = []
            for k in range(i + 1, min(len(h), i + vocab.longest) + 1):
                piece = h[i:k]
                if piece not in vocab.prefixes:
                    break
                ids.extend(vocab.plain.get(piece, ()))
            self.at.append(tuple(ids))
        self.anywhere = sorted({t for i, ids in enumerate(self.at) if self.starts[i] for t in ids})

    def _positions(self, value: bytes) -> list[int]:
        """Where ``value`` occurs starting at a word boundary."""
        h, out, pos = self.haystack, [], self.haystack.find(value)
        while pos >= 0:
            if self.starts[pos]:
                out.append(pos)
            pos = h.find(value, pos + 1)
        return out

    def occurs(self, value: bytes, whole: bool = False) -> bool:
        """``value`` starts at a word boundary of the prompt (and, if ``whole``, ends at one); an empty value always."""
        return not value or any(not whole or self.ends[p + len(value)] for p in self._positions(value))

    def continuations(self, value: bytes) -> list[int]:
        """Plain tokens after which ``value`` + token is still a span of the prompt (starting at a word boundary)."""
        if not value:
            return list(self.anywhere)
        out: set[int] = set()
        for pos in self._positions(value):
            out.update(self.at[pos + len(value)])
        return list(out)


class SpanCopyProcessor:
    """A transformers logits processor: inside a JSON string value, only tokens that keep it a span of the prompt.

    One per generation batch; rows follow the batch order. Rows that ended (a special token such as
    EOS or padding) are left alone.
    """

    def __init__(self, vocab: Vocab, sources: Sequence[str], width: int, eos_id: int | None):
        self.vocab, self.width, self.eos = vocab, width, eos_id
        self.index = [SpanIndex(s, vocab) for s in sources]
        self.cursors = [JsonCursor() for _ in sources]
        self.done = [False] * len(sources)
        self.outside: list[dict[tuple[Any, ...], tuple[bool, list[int]]]] = [{} for _ in sources]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        new = input_ids.shape[1] > self.width
        for row in range(scores.shape[0]):
            if new and not self.done[row]:
                tid = int(input_ids[row, -1])
                b = self.vocab.by_id.get(tid)
                if b is None:
                    self.done[row] = True
                else:
                    self.cursors[row].feed(b)
            if self.done[row]:
                continue
            keep, ids = (True, self.allowed_in_value(row)) if self.cursors[row].in_value else self.outside_value(row)
            if keep:
                mask = torch.full_like(scores[row], float("-inf"))
                mask[ids] = 0
                scores[row] += mask
            elif ids:
                scores[row, ids] = float("-inf")
        return scores

    def allowed_in_value(self, row: int) -> list[int]:
        """Plain continuations of the value, plus the quote/backslash tokens that keep every value a span."""
        cur, idx = self.cursors[row], self.index[row]
        value, h = cur.content, idx.haystack
        ids = idx.continuations(value)
        for tid, b, pre in self.vocab.special:
            if cur.esc or value + pre in h:
                trial = cur.copy()
                if trial.feed(b, idx):
                    ids.append(tid)
        return ids

    def outside_value(self, row: int) -> tuple[bool, list[int]]:
        """(keep, ids): in a key, the quote/backslash tokens to refuse; in the structure, the tokens to keep (cached per state).

        Structure keeps JSON punctuation, numbers, literals, EOS and the quote tokens whose text
        after them is valid; a key's own text is free.
        """
        cur, cache = self.cursors[row], self.outside[row]
        key = cur.signature()
        if key not in cache:
            idx = self.index[row]
            passing = [tid for tid, b, _ in self.vocab.special if cur.copy().feed(b, idx)]
            if cur.in_str:  # a key
                ok = set(passing)
                cache[key] = (False, [tid for tid, _, _ in self.vocab.special if tid not in ok])
            else:
                cache[key] = (True, [*self.vocab.structural, *passing, *([self.eos] if self.eos is not None else [])])
        return cache[key]


@lru_cache(maxsize=1)
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (the byte-level BPE alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = list(bs)
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))
