"""Span-copy decoding for extraction: every JSON string value the model writes is copied from its prompt.

Where the reference values are spans of the input (``alternatives/shape.py``: "spans"), a value the
model invents or misspells can only lose field F1. While the model writes a JSON string VALUE, a
logits processor keeps only the tokens after which the value is still a substring of the prompt
(as JSON escapes it: ``"`` -> ``\\"``, with or without ``\\uXXXX`` for non-ASCII), plus the closing
quote. Keys, numbers and JSON structure stay free. This is the span analogue of the label trie that
classification decodes with (``generate.generate_constrained``).

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

QUOTE, BACKSLASH = 0x22, 0x5C
OPEN = frozenset(b"{[")
CLOSE = frozenset(b"}]")


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

    def feed(self, data: bytes, haystack: bytes | None = None) -> bool:
        """Advance over ``data``; False when ``haystack`` is given and a value string left it."""
        start = len(self.content)
        for c in data:
            if self.in_str:
                if self.esc:
                    self.esc = False
                elif c == BACKSLASH:
                    self.esc = True
                elif c == QUOTE:
                    self.in_str = False
                    if haystack is not None and not self.is_key and self.content not in haystack:
                        return False
                    continue
                self.content += bytes((c,))
            elif c == QUOTE:
                self.in_str, self.esc, self.content, start = True, False, b"", 0
                self.is_key = bool(self.stack) and self.stack[-1] == 0x7B and self.expect_key
            else:
                self._structure(c)
        return haystack is None or not self.in_value or len(self.content) == start or self.content in haystack

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
    vocab = Vocab(len(tokenizer), {b: tuple(ids) for b, ids in plain.items()}, prefixes, tuple(special), max(map(len, plain)), by_id)
    try:
        tokenizer._tunerail_span_vocab = vocab
    except AttributeError:  # a tokenizer that refuses attributes: rebuilt per call
        pass
    return vocab


def escaped(text: str) -> bytes:
    """The text as a JSON string body, in both conventions (non-ASCII raw and as ``\\uXXXX``), NUL-separated."""
    forms = dict.fromkeys([json.dumps(text, ensure_ascii=False)[1:-1], json.dumps(text)[1:-1]])
    return b"\x00".join(f.encode() for f in forms)


class SpanIndex:
    """One prompt's escaped text and, per byte position, the plain tokens that match there."""

    def __init__(self, source: str, vocab: Vocab):
        self.haystack = h = escaped(source)
        self.at: list[tuple[int, ...]] = []
        for i in range(len(h) + 1):
            ids: list[int] = []
            for k in range(i + 1, min(len(h), i + vocab.longest) + 1):
                piece = h[i:k]
                if piece not in vocab.prefixes:
                    break
                ids.extend(vocab.plain.get(piece, ()))
            self.at.append(tuple(ids))
        self.anywhere = sorted({t for ids in self.at for t in ids})

    def continuations(self, value: bytes) -> list[int]:
        """Plain tokens after which ``value`` + token is still a substring of the prompt."""
        if not value:
            return list(self.anywhere)
        h, pos = self.haystack, self.haystack.find(value)
        out: set[int] = set()
        while pos >= 0:
            out.update(self.at[pos + len(value)])
            pos = h.find(value, pos + 1)
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
        self.banned: list[dict[tuple[Any, ...], list[int]]] = [{} for _ in sources]

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
            cur = self.cursors[row]
            if cur.in_value:
                keep = torch.full_like(scores[row], float("-inf"))
                keep[self.allowed_in_value(row)] = 0
                scores[row] += keep
            else:
                banned = self.banned_outside(row)
                if banned:
                    scores[row, banned] = float("-inf")
        return scores

    def allowed_in_value(self, row: int) -> list[int]:
        """Plain continuations of the value, plus the quote/backslash tokens that keep every value a span."""
        cur, idx = self.cursors[row], self.index[row]
        value, h = cur.content, idx.haystack
        ids = idx.continuations(value)
        for tid, b, pre in self.vocab.special:
            if cur.esc or value + pre in h:
                trial = cur.copy()
                if trial.feed(b, h):
                    ids.append(tid)
        return ids

    def banned_outside(self, row: int) -> list[int]:
        """Outside a value, only a quote/backslash token that opens a value with invented text is refused (cached per state)."""
        cur, cache = self.cursors[row], self.banned[row]
        key = cur.signature()
        if key not in cache:
            h = self.index[row].haystack
            cache[key] = [tid for tid, b, _ in self.vocab.special if not cur.copy().feed(b, h)]
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


def is_span_copy(value: str, source: str) -> bool:
    """True when ``value``, written as a JSON string body, is a substring of the escaped ``source``."""
    return json.dumps(value, ensure_ascii=False)[1:-1].encode() in escaped(source) or json.dumps(value)[1:-1].encode() in escaped(source)
