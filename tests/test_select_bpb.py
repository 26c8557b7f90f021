"""Bits per byte of whole documents (select's parity with lm-eval) for a tokenizer that adds a BOS.

Gemma's tokenizer adds ``<bos>`` to every encoding by default; SmolLM2's adds nothing. lm-eval's
``loglikelihood_rolling`` predicts every token of the document from one prefix token (the BOS);
encoding the document with the tokenizer's defaults as well would score ``<bos> <bos> text``,
and the document's bits would include ``log p(<bos> | <bos>)``, a token that is not in its bytes.
That was the 23.6 % gap between select and lm-eval's default on Gemma 3 270M. The tiny random model
here gets a tokenizer that adds a BOS the way Gemma's does (a template post-processor).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from train_tiny import tiny_model_dir

DOCS = [
    "I am still waiting on my card?",
    "What can I do if my card still hasn't arrived after 2 weeks?",
    "Is there a way to know when my card will arrive?",
    "My card has not arrived yet.",
    "card arrival",
]


@pytest.fixture(scope="module")
def bos_model(tmp_path_factory) -> Path:
    """The tiny model saved with a tokenizer whose default encoding starts with its BOS (as Gemma's)."""
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("bos-model")
    AutoModelForCausalLM.from_pretrained(tiny_model_dir()).save_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir())
    bos = tok.bos_token
    tok._tokenizer.post_processor = TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tok.bos_token_id)])
    tok.save_pretrained(folder)
    return folder


def _reference_bits(model, ids_per_doc: list[list[int]]) -> float:
    """Sum of -log2 p(token | everything before it) over ids[1:], one unpadded forward per document."""
    import torch

    total = 0.0
    for ids in ids_per_doc:
        with torch.inference_mode():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1].float(), -1)
        total += float(logp.gather(-1, torch.tensor(ids[1:]).unsqueeze(-1)).sum())
    return -total / math.log(2)


def test_each_document_is_scored_once_after_a_single_bos(bos_model):
    from tunerail.eval.generate import load_model
    from tunerail.select.probes import document_bits_per_byte

    lm = load_model(str(bos_model))
    tok, bos = lm.tokenizer, lm.tokenizer.bos_token_id
    assert tok("card")["input_ids"][0] == bos  # the tokenizer adds its BOS, like Gemma's
    n_bytes = sum(len(d.encode("utf-8")) for d in DOCS)
    single = _reference_bits(lm.model, [[bos] + tok(d, add_special_tokens=False)["input_ids"] for d in DOCS]) / n_bytes
    doubled = _reference_bits(lm.model, [[bos] + tok(d)["input_ids"] for d in DOCS]) / n_bytes

    ours = document_bits_per_byte(lm, DOCS, batch_size=2)  # left-padded batches of different lengths
    assert ours == pytest.approx(single, rel=1e-5)
    assert abs(ours - doubled) > 0.05 * single  # the extra <bos> prediction is not counted


def test_parity_with_lm_eval_loglikelihood_rolling(bos_model):
    """lm-eval itself: equal with ``add_bos_token=False``; its default differs by exactly the
    ``log p(<bos> | <bos>)`` term plus the doubled-BOS context."""
    pytest.importorskip("lm_eval")
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from tunerail.eval.generate import load_model
    from tunerail.select.probes import document_bits_per_byte

    lm = load_model(str(bos_model))
    n_bytes = sum(len(d.encode("utf-8")) for d in DOCS)
    requests = [Instance(request_type="loglikelihood_rolling", doc={}, arguments=(d,), idx=i) for i, d in enumerate(DOCS)]

    def lm_eval_bpb(add_bos_token: bool | None) -> float:
        harness = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=2, device="cpu", add_bos_token=add_bos_token)
        return -sum(harness.loglikelihood_rolling(requests, disable_tqdm=True)) / (n_bytes * math.log(2))

    ours = document_bits_per_byte(lm, DOCS)
    assert ours == pytest.approx(lm_eval_bpb(False), rel=1e-5)
    tok, bos = lm.tokenizer, lm.tokenizer.bos_token_id
    doubled = _reference_bits(lm.model, [[bos] + tok(d)["input_ids"] for d in DOCS]) / n_bytes
    assert lm_eval_bpb(None) == pytest.approx(doubled, rel=1e-5)
