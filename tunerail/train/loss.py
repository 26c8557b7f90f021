"""The training loss: answer tokens only, the LM head applied only where a label is set, the shared prefix run once.

One ``nn.Module`` (:func:`loss_model`) returns (summed answer-token loss, token count), so DDP's
gradient sync stays intact and the recipe, the probe and the benches all train through the same code.
What it saves (2-core CPU, SmolLM2-135M, ``bench/train.py``): batch x answer tokens of logits instead of
batch x length x vocab (1-2 GB less RAM), and the template's common opening computed once per batch.
"""

from __future__ import annotations

from typing import Any

MIN_SHARED_PREFIX = 4  # shorter common prefixes are not worth a second decoder call


def shared_prefix_length(input_ids: Any, labels: Any) -> int:
    """Tokens every row of the batch starts with, up to the first position whose hidden state the loss needs.

    Rows rendered with one template share the system turn and the template's opening; the
    prefix stops before the first answer-predicting position (``labels[:, i + 1] != -100``), so
    every hidden state the loss reads comes from the per-row pass.
    """
    if input_ids.shape[0] < 2:
        return 0
    same = (input_ids == input_ids[:1]).all(dim=0)
    lcp = int(same.long().cumprod(0).sum())
    needed = (labels[:, 1:] != -100).any(dim=0).nonzero()
    first = int(needed[0]) if len(needed) else input_ids.shape[1]
    p = min(lcp, first, input_ids.shape[1] - 1)
    return p if p >= MIN_SHARED_PREFIX else 0


def _cache_kwarg(decoder: Any) -> str:
    import inspect

    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


def decoder_hidden(decoder: Any, input_ids: Any, attention_mask: Any, prefix: int) -> Any:
    """Last hidden states of positions ``prefix..`` with the shared prefix run once for the batch.

    The prefix goes through the decoder once (batch 1, with gradients); its key/value cache is
    repeated over the batch rows and the rest of each row attends to it. Same attention, same
    positions, so the loss and the gradients equal the full computation (fp32 tolerance; dropout
    masks of the prefix are shared by the rows). ``prefix`` 0 runs the plain full forward.
    """
    if prefix == 0:
        return decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    key = _cache_kwarg(decoder)
    head = decoder(input_ids=input_ids[:1, :prefix], use_cache=True)
    cache = getattr(head, key, None) or head.past_key_values
    cache.batch_repeat_interleave(input_ids.shape[0])
    rest = decoder(input_ids=input_ids[:, prefix:], attention_mask=attention_mask, use_cache=True, **{key: cache})
    return rest.last_hidden_state


def loss_model(model: Any, *, answer_only_head: bool, autocast_bf16: bool, shared_prefix: bool = True) -> Any:
    """Wrap the (peft) model so one forward returns (summed answer-token loss, token count).

    Going through one ``nn.Module`` keeps DDP's gradient sync intact. With ``answer_only_head``
    the decoder runs once for hidden states and the LM head is applied only where a label is
    set, instead of materialising batch x length x vocab logits. With ``shared_prefix`` the
    batch's common prompt prefix runs once (:func:`decoder_hidden`).
    """
    import torch
    import torch.nn.functional as F

    class _LossModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            base = model.get_base_model() if hasattr(model, "get_base_model") else model
            self._base = [base]  # not a submodule: already registered through self.model
            softcap = getattr(getattr(base, "config", None), "final_logit_softcapping", None)
            self.answer_only = answer_only_head and softcap is None and base.get_output_embeddings() is not None
            self.shared_prefix = shared_prefix and self.answer_only
            self.prefix_tokens_saved = 0  # rows x shared prefix tokens not recomputed (for the bench)

        def forward(self, input_ids: Any, attention_mask: Any, labels: Any) -> tuple[Any, Any]:
            targets = labels[:, 1:]
            mask = targets != -100
            with torch.autocast(
                "cpu" if input_ids.device.type == "cpu" else input_ids.device.type, dtype=torch.bfloat16, enabled=autocast_bf16
            ):
                if self.answer_only:
                    base = self._base[0]
                    prefix = shared_prefix_length(input_ids, labels) if self.shared_prefix else 0
                    self.prefix_tokens_saved += prefix * (input_ids.shape[0] - 1)
                    hidden = decoder_hidden(base.get_decoder(), input_ids, attention_mask, prefix)
                    logits = base.get_output_embeddings()(hidden[:, :-1][mask[:, prefix:]])
                else:
                    logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1][mask]
            loss_sum = F.cross_entropy(logits.float(), targets[mask], reduction="sum")
            return loss_sum, mask.sum()

    return _LossModel()
