"""A SentencePiece-style vocabulary (byte-fallback BPE ``tokenizer.json``, Gemma's) as GGUF's ``llama`` tokenizer.

llama.cpp's converter reads such a vocabulary from ``tokenizer.model`` (``_set_vocab_sentencepiece``),
which transformers 5 no longer saves beside a fine-tuned model; the ``gguf`` package's
``LlamaHfVocab`` reads ``tokenizer.json`` but gives every token the score -1000, and llama.cpp's
SentencePiece tokenizer merges the adjacent pair whose joined piece has the highest score, so equal
scores would merge left to right instead of in the model's order. Here a piece's score is minus the
rank of the first merge that makes it: llama.cpp then merges in the order the BPE merges do
(``tokenizer.json``'s merges were made from the SentencePiece scores, best first).

Token types as ``_set_vocab_sentencepiece`` writes them: ``<0xNN>`` pieces BYTE, the unknown piece
UNKNOWN, added special tokens CONTROL, other added tokens USER_DEFINED, ids with no piece UNUSED.
Only a vocabulary without SentencePiece's dummy prefix (Gemma's) is written: one that prepends "▁"
(Llama 2, Mistral 7B v0.1-v0.3) is refused, as no such tokenizer was at hand to verify the file.

``add_bos_token`` is written as the tokenizer asks (True for Gemma), as llama.cpp's converter writes it, so a
prompt sent to llama.cpp without the template still gets its BOS; where the chat template itself opens with
``{{ bos_token }}`` (Gemma's does), ``gguf.engine_prompt`` drops the template's before a rendered prompt goes to
llama.cpp (``tunerail serve --engine llama.cpp``, the EXP007 check), as llama.cpp's own chat path does, so the
engine reads training's one BOS.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tunerail.errors import Problem, TunerailError
from tunerail.export.gguf_arch import CONVERT_YOURSELF

_BYTE = re.compile(r"<0x[0-9A-Fa-f]{2}>")


def is_sentencepiece_style(data: dict[str, Any]) -> bool:
    """A byte-fallback BPE ``tokenizer.json`` (converted from a SentencePiece model)."""
    model = data.get("model") or {}
    return model.get("type") == "BPE" and bool(model.get("byte_fallback"))


def _prepends_space(data: dict[str, Any]) -> bool:
    normalizer = data.get("normalizer") or {}
    parts = normalizer.get("normalizers", [normalizer])
    return any(p.get("type") == "Prepend" for p in parts) or (data.get("pre_tokenizer") or {}).get("type") == "Metaspace"


def write_spm_vocab(writer: Any, data: dict[str, Any], path: Path, vocab_size: int) -> None:
    """Tokens, scores and types of ``data`` (``path``, a ``tokenizer.json``) under GGUF's ``llama`` tokenizer model."""
    import gguf

    if _prepends_space(data):
        raise TunerailError(
            Problem(
                "a SentencePiece-style vocabulary with a dummy prefix (Llama 2, Mistral 7B v0.1-v0.3) is not written by this converter",
                file=str(path),
                fix=CONVERT_YOURSELF,
            )
        )
    model = data["model"]
    rank: dict[str, int] = {}
    for r, pair in enumerate(model["merges"]):
        left, right = pair if isinstance(pair, list) else pair.split(" ", 1)
        rank.setdefault(left + right, r)
    pieces = {i: t for t, i in model["vocab"].items()}
    added = {a["id"]: a for a in data.get("added_tokens", [])}
    tokens, scores, types = [], [], []
    for i in range(vocab_size):
        text = added[i]["content"] if i in added else pieces.get(i)
        if text is None:
            tokens.append(f"[PAD{i}]")
            scores.append(-1000.0)
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(text)
        scores.append(-float(rank.get(text, len(rank))))
        if i in added:
            types.append(gguf.TokenType.CONTROL if added[i].get("special") else gguf.TokenType.USER_DEFINED)
        elif _BYTE.fullmatch(text):
            types.append(gguf.TokenType.BYTE)
        elif text == model.get("unk_token"):
            types.append(gguf.TokenType.UNKNOWN)
        else:
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_add_space_prefix(False)
    gguf.SpecialVocab(path.parent, load_merges=False).add_to_gguf(writer)
