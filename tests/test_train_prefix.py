"""Shared-prefix reuse: the batch's common prompt prefix runs once, with identical loss and gradients."""

from __future__ import annotations

import pytest

from train_tiny import banking_rows, tiny_config


def _batch_and_models(tmp_path, loss_on="all"):
    import torch

    from tunerail.models import load_tokenizer
    from tunerail.train.data import collate, load_split, tokenize_records
    from tunerail.train.lora import load_base_model, prepare_model
    from tunerail.train.loss import loss_model

    cfg = tiny_config(tmp_path)
    tok = load_tokenizer(cfg.model.base)
    examples = tokenize_records(load_split(banking_rows(6), cfg, "train"), tok, cfg.prompts[0], max_length=128, loss_on=loss_on)
    batch = collate(examples, tok.pad_token_id)
    model = prepare_model(load_base_model(cfg.model.base, method="lora", bf16=False), method="lora", lora=cfg.train.lora, seed=1)
    torch.manual_seed(2)
    with torch.no_grad():  # LoRA B starts at zero (then A gets no gradient): give both a value
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return batch, model, loss_model


def _loss_and_grads(loss_model, model, batch):
    model.zero_grad(set_to_none=True)
    loss_sum, n = loss_model(**batch)
    (loss_sum / n).backward()
    return float(loss_sum), {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}


def test_shared_prefix_loss_and_lora_gradients_equal_the_full_computation(tmp_path):
    import torch

    from tunerail.train.loss import shared_prefix_length

    batch, model, make = _batch_and_models(tmp_path)
    prefix = shared_prefix_length(batch["input_ids"], batch["labels"])
    assert prefix >= 10  # system turn + "<|im_start|>user\n" are shared by every row
    assert (batch["labels"][:, : prefix + 1] == -100).all()
    shared = make(model, answer_only_head=True, autocast_bf16=False, shared_prefix=True)
    full = make(model, answer_only_head=True, autocast_bf16=False, shared_prefix=False)
    loss_shared, grads_shared = _loss_and_grads(shared, model, batch)
    loss_full, grads_full = _loss_and_grads(full, model, batch)
    assert shared.prefix_tokens_saved == prefix * 5 and full.prefix_tokens_saved == 0
    assert loss_shared == pytest.approx(loss_full, rel=1e-5)
    assert grads_shared.keys() == grads_full.keys() and len(grads_full) > 0
    for name in grads_full:
        assert torch.allclose(grads_shared[name], grads_full[name], rtol=1e-4, atol=1e-6), name
    assert any(g.abs().sum() > 0 for k, g in grads_full.items() if "lora_A" in k)


def test_no_sharing_when_the_loss_covers_the_prompt(tmp_path):
    from tunerail.train.loss import shared_prefix_length

    batch, _, _ = _batch_and_models(tmp_path, loss_on="sequence")
    assert shared_prefix_length(batch["input_ids"], batch["labels"]) == 0
    assert shared_prefix_length(batch["input_ids"][:1], batch["labels"][:1]) == 0  # one row: nothing to share
