"""Inference for evaluation: batched greedy or beam generation and batched answer scoring.

- Generation: left padding (so every row's next token sits at the last position), KV cache,
  greedy decoding or beam search (``eval.num_beams``), rows sorted by length so a batch wastes little padding.
- Scoring (label ranking, answer log-likelihood, perplexity, multiple choice): each
  (prompt, answer) pair is one left-padded sequence, batched ACROSS examples (a forward costs
  ~40 ms fixed on CPU, so one example per forward is 1.6x slower), and the LM head is computed
  only on the answer positions (``logits_to_keep``) instead of length x 49k vocabulary logits.
- Results are cached on disk by (model + adapter hash, data hash, prompt hash, settings), so a
  re-run of `tunerail eval` after a report tweak costs nothing.

torch / transformers / peft are imported inside functions.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from tunerail.eval.prefill import prefilled_cache
from tunerail.eval.cache import CACHE_FORMAT, CACHE_LOG, CACHE_STATS, cache_key, cache_summary, cached, data_hash  # noqa: F401 (callers use G.cached)

Progress = Callable[[str, int, int], None]  # (stage, done, total)
log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A model ready for inference plus the identity used in cache keys and reports."""

    model: Any
    tokenizer: Any
    name: str
    fingerprint: str


def model_fingerprint(base: str, adapter_dir: str | Path | None) -> str:
    """Base name + weight files (size, mtime) + the adapter's file contents.

    The adapter (a few MB) is hashed fully: retraining into the same folder must invalidate
    the cache. Base weights (hundreds of MB) are identified by path, size and mtime.
    """
    from tunerail.models import resolve_model

    digest = hashlib.sha256(base.encode())
    path = Path(resolve_model(base))
    if path.is_dir():
        for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
            st = f.stat()
            digest.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    if adapter_dir is not None:
        for f in sorted(Path(adapter_dir).rglob("*")):
            if f.is_file():
                digest.update(f.name.encode())
                digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def load_model(base: str, adapter_dir: str | Path | None = None, *, dtype: str = "float32") -> LoadedModel:
    """Base model, optionally with a LoRA adapter merged in (merging makes generation faster)."""
    from tunerail.errors import Problem, TunerailError
    from tunerail.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(base)
    tokenizer.padding_side = "left"
    model = load_causal_lm(base, dtype=dtype)
    name = base
    if adapter_dir is not None:
        if not (Path(adapter_dir) / "adapter_config.json").exists():
            raise TunerailError(
                Problem(
                    "not a peft adapter folder (no adapter_config.json)",
                    file=str(adapter_dir),
                    fix="pass the adapter_dir written by `tunerail train`",
                )
            )
        from peft import PeftModel
        from safetensors import SafetensorError

        try:
            model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
        except (RuntimeError, SafetensorError, ValueError) as exc:  # r/target modules differ from the weights, or a cut file
            detail = str(exc).strip().splitlines()
            raise TunerailError(
                Problem(
                    f"the adapter's weights do not load into its adapter_config.json ({type(exc).__name__}: {' '.join(detail[:2])[:300]})",
                    file=str(Path(adapter_dir) / "adapter_config.json"),
                    fix="adapter_config.json (r, lora_alpha, target_modules) and adapter_model.safetensors must come "
                    "from the same run: copy both from that run's train/adapter folder",
                )
            ) from None
        name = f"{base} + {Path(adapter_dir).name}"
    from tunerail.models import compute_device

    model.to(compute_device()).eval()  # the GPU when there is one; inputs follow model.device
    return LoadedModel(model, tokenizer, name, model_fingerprint(base, adapter_dir))


def generate(
    lm: LoadedModel, prompts: Sequence[str], *, max_new_tokens: int, batch_size: int = 16, progress: Progress | None = None
) -> list[str]:
    """Greedy continuations of already-rendered prompts (order preserved)."""
    return [c[0] for c in generate_candidates(lm, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)]


def generate_candidates(
    lm: LoadedModel,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int = 16,
    num_beams: int = 1,
    progress: Progress | None = None,
) -> list[list[str]]:
    """Each prompt's finished beams, likeliest first (``num_beams`` of them; one greedy answer when 1).

    Beam search (transformers' ``num_beams``, stopping once as many candidates as beams are
    finished) finds likelier, more typical answers than greedy decoding; the candidates let a task
    choose among them (``tunerail.keywords.most_covering`` for keywords-to-text prompts).
    """
    tok = lm.tokenizer
    how = _Decoding("generate", lambda row: tok.decode(row, skip_special_tokens=True).strip(), num_beams=num_beams)
    return _decode_batches(lm, prompts, how, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)


def _greedy_batches(
    lm: LoadedModel,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    progress: Progress | None,
    stage: str,
    finish: Callable[[Any], str],
    constrain: Callable[[list[int], int], dict[str, Any]] | None = None,
) -> list[str]:
    """The one batched greedy loop (free, label-constrained, span-copy): length-sorted batches, left padding.

    ``finish`` turns a row of new token ids into the answer; ``constrain`` (given the batch's row
    indices and prompt width) returns extra ``generate`` arguments (``prefix_allowed_tokens_fn``,
    ``logits_processor``).
    """
    how = _Decoding(stage, finish, constrain)
    found = _decode_batches(lm, prompts, how, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    return [c[0] for c in found]


@dataclass
class _Decoding:
    """How one pass decodes: its progress stage, ids -> answer, per-batch ``generate`` extras, beams (1: greedy)."""

    stage: str
    finish: Callable[[Any], str]
    constrain: Callable[[list[int], int], dict[str, Any]] | None = None
    num_beams: int = 1


def _decode_batches(
    lm: LoadedModel, prompts: Sequence[str], how: _Decoding, *, max_new_tokens: int, batch_size: int, progress: Progress | None
) -> list[list[str]]:
    """:func:`_greedy_batches`'s loop, with beam search when ``how.num_beams`` > 1 (every finished beam returned)."""
    import torch

    stage, finish, constrain, num_beams = how.stage, how.finish, how.constrain, how.num_beams

    tok = lm.tokenizer
    tok.padding_side = "left"
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[list[str]] = [[] for _ in prompts]
    beams = {"num_beams": num_beams, "num_return_sequences": num_beams, "early_stopping": True} if num_beams > 1 else {}
    done = 0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(lm.model.device) for k, v in enc.items()}
        width = enc["input_ids"].shape[1]
        extra = constrain(idx, width) if constrain else {}
        if num_beams > 1 and width > 1:
            extra["past_key_values"] = prefilled_cache(lm.model, enc, num_beams)
        with torch.inference_mode():
            gen = lm.model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                use_cache=True,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
                **beams,
                **extra,
            )
        rows = gen[:, width:]
        for k, i in enumerate(idx):
            out[i] = [finish(row) for row in rows[k * num_beams : (k + 1) * num_beams]]
        done += len(idx)
        if progress:
            progress(stage, done, len(prompts))
    return out


def label_trie(tokenizer: Any, labels: Sequence[str]) -> dict[Any, Any]:
    """Nested dict over the labels' token ids (tokenised as training tokenises an answer); key None ends a label."""
    trie: dict[Any, Any] = {}
    for label, ids in zip(labels, _encode_cached(tokenizer, list(labels))):
        node = trie
        for t in ids:
            node = node.setdefault(t, {})
        node[None] = label
    return trie


def generate_constrained(
    lm: LoadedModel, prompts: Sequence[str], labels: Sequence[str], *, batch_size: int = 16, progress: Progress | None = None
) -> list[str]:
    """Greedy decoding restricted to the label set: every answer is exactly one of ``labels``.

    A trie over the labels' token sequences feeds transformers' ``prefix_allowed_tokens_fn``: at each
    step only the tokens that continue some label (or the end token, where a label is complete) keep
    their logits. Same cost as free generation with ``max_new_tokens`` = longest label + 1; greedy, so
    it can differ from full label ranking (``rank_labels``) when an early token misleads.
    """
    tok = lm.tokenizer
    eos = tok.eos_token_id
    trie = label_trie(tok, labels)
    longest = max(len(ids) for ids in _encode_cached(tok, list(labels)))

    def allowed_for_width(width: int) -> Callable[[int, Any], list[int]]:
        def allowed(_batch_id: int, ids: Any) -> list[int]:
            node = trie
            for t in ids[width:].tolist():
                if t == eos or t not in node:
                    return [eos]  # finished row (padded with eos afterwards)
                node = node[t]
            options = [t for t in node if t is not None]
            return options + [eos] if None in node or not options else options

        return allowed

    def finish(row: Any) -> str:
        node = trie
        for t in row.tolist():
            if t == eos or t not in node:
                break
            node = node[t]
        return node.get(None) or _first_label(node)

    return _greedy_batches(
        lm,
        prompts,
        max_new_tokens=longest + 1,
        batch_size=batch_size,
        progress=progress,
        stage="constrained",
        finish=finish,
        constrain=lambda _idx, width: {"prefix_allowed_tokens_fn": allowed_for_width(width)},
    )


def generate_span_copy(
    lm: LoadedModel,
    prompts: Sequence[str],
    sources: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> list[str]:
    """Greedy decoding where every JSON string value is copied from its source text (``span_copy.py``).

    ``prompts`` are the rendered prompts; ``sources`` the texts values may be copied from (the
    records' prompts, without the system message or template). Keys and JSON structure stay free.
    Same forward passes as free generation, plus a per-step mask computed in Python.
    """
    from transformers import LogitsProcessorList

    from tunerail.eval.span_copy import SpanCopyProcessor, build_vocab

    tok = lm.tokenizer
    vocab = build_vocab(tok)
    return _greedy_batches(
        lm,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=progress,
        stage="span_copy",
        finish=lambda row: tok.decode(row, skip_special_tokens=True).strip(),
        constrain=lambda idx, width: {
            "logits_processor": LogitsProcessorList([SpanCopyProcessor(vocab, [sources[i] for i in idx], width, tok.eos_token_id)])
        },
    )


def _first_label(node: dict[Any, Any]) -> str:
    """A label below ``node`` (reached only if generation stopped early, e.g. a max-length cut)."""
    while None not in node:
        node = next(iter(node.values()))
    return node[None]


def score_answers(
    lm: LoadedModel,
    prompts: Sequence[str],
    answers: Sequence[str],
    *,
    batch_size: int = 16,
    add_eos: bool = True,
    progress: Progress | None = None,
    stage: str = "score",
) -> tuple[np.ndarray, np.ndarray]:
    """Sum of log p(answer tokens | prompt) and the answer token counts, per pair.

    The answer is followed by the EOS token (``<|im_end|>``) when ``add_eos``: a label is only
    fully predicted if the model also stops after it.
    """
    import torch

    tok = lm.tokenizer
    eos = [tok.eos_token_id] if add_eos and tok.eos_token_id is not None else []
    p_ids = _encode_cached(tok, prompts)
    a_ids = [ids + eos for ids in _encode_cached(tok, answers)]
    order = sorted(range(len(prompts)), key=lambda i: len(p_ids[i]) + len(a_ids[i]))
    logp = np.zeros(len(prompts))
    counts = np.array([len(a) for a in a_ids])
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    decoder, head = lm.model.get_decoder(), lm.model.get_output_embeddings()
    done = 0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        seqs = [p_ids[i] + a_ids[i] for i in idx]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, width - len(s) :] = torch.tensor(s)
            mask[r, width - len(s) :] = 1
        ids, mask = ids.to(lm.model.device), mask.to(lm.model.device)
        with torch.inference_mode():
            hidden = decoder(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).last_hidden_state
            rows, cols = _answer_positions([len(a_ids[i]) for i in idx], width)
            token_lp = _token_logprobs(head, hidden[rows, cols - 1], ids[rows, cols])
        sums = np.zeros(len(idx))
        np.add.at(sums, rows.numpy(), token_lp.cpu().numpy())
        logp[idx] = sums
        done += len(idx)
        if progress:
            progress(stage, done, len(prompts))
    return logp, counts


def _answer_positions(lengths: Sequence[int], width: int) -> tuple[Any, Any]:
    """(row, column) of every answer token in a left-padded batch (answers end each row)."""
    import torch

    rows = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    cols = torch.cat([torch.arange(width - n, width) for n in lengths])
    return rows, cols


def _token_logprobs(head: Any, hidden: Any, targets: Any, chunk: int = 256) -> Any:
    """log p(target) from hidden states, applying the LM head only to the rows we need.

    The full (batch x length x 49k vocabulary) logits tensor would be hundreds of MB; chunks of
    256 positions keep memory flat and the head's cost proportional to answer tokens only.
    """
    import torch

    out = []
    for start in range(0, hidden.shape[0], chunk):
        logits = head(hidden[start : start + chunk]).float()
        tgt = targets[start : start + chunk]
        out.append(logits.gather(-1, tgt.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1))
    return torch.cat(out) if out else torch.zeros(0)


def score_choices(
    lm: LoadedModel,
    prompts: Sequence[str],
    choices: Sequence[Sequence[str]],
    *,
    batch_size: int = 16,
    add_eos: bool = True,
    progress: Progress | None = None,
    stage: str = "choices",
) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood of K candidate answers per prompt, running each prompt ONCE.

    The prompt's KV cache is computed once per batch of prompts, repeated K times
    (``batch_repeat_interleave``), and the K right-padded candidates are scored against it.
    Exact (same numbers as ``score_answers``) and much cheaper when prompts are longer than
    the candidates (label ranking: ~70-token prompt, 4-17-token labels). Returns (N, K) arrays
    of summed log-probabilities and candidate token counts.
    """
    import torch

    tok = lm.tokenizer
    k = len(choices[0]) if choices else 0
    if any(len(c) != k for c in choices):
        raise ValueError("every prompt needs the same number of choices")
    eos = [tok.eos_token_id] if add_eos and tok.eos_token_id is not None else []
    p_ids = _encode_cached(tok, prompts)
    flat = _encode_cached(tok, [c for row in choices for c in row])
    c_ids = [[flat[i * k + j] + eos for j in range(k)] for i in range(len(prompts))]
    logp = np.zeros((len(prompts), k))
    counts = np.array([[len(c) for c in row] for row in c_ids]).reshape(len(prompts), k)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    decoder, head = lm.model.get_decoder(), lm.model.get_output_embeddings()
    per_batch = max(1, min(batch_size, 64 // max(k, 1)))  # bounds (prompts x K) rows per forward
    order = sorted(range(len(prompts)), key=lambda i: len(p_ids[i]))
    done = 0
    for start in range(0, len(order), per_batch):
        idx = order[start : start + per_batch]
        width = max(len(p_ids[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            ids[r, width - len(p_ids[i]) :] = torch.tensor(p_ids[i])
            mask[r, width - len(p_ids[i]) :] = 1
        cw = max(len(c) for i in idx for c in c_ids[i])
        cids = torch.full((len(idx) * k, cw), pad, dtype=torch.long)
        lengths = []
        for r, i in enumerate(idx):
            for j, c in enumerate(c_ids[i]):
                cids[r * k + j, : len(c)] = torch.tensor(c)
                lengths.append(len(c))
        cmask = (torch.arange(cw).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)).long()
        dev = lm.model.device
        ids, mask, cids, cmask = ids.to(dev), mask.to(dev), cids.to(dev), cmask.to(dev)
        with torch.inference_mode():
            out = decoder(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0), use_cache=True)
            last = out.last_hidden_state[:, -1].repeat_interleave(k, dim=0)  # predicts each choice's 1st token
            cache = out.past_key_values
            cache.batch_repeat_interleave(k)
            cpos = mask.sum(-1).repeat_interleave(k).unsqueeze(-1) + torch.arange(cw, device=dev).unsqueeze(0)
            hidden = decoder(
                input_ids=cids,
                attention_mask=torch.cat([mask.repeat_interleave(k, dim=0), cmask], dim=-1),
                position_ids=cpos,
                past_key_values=cache,
                use_cache=True,
            ).last_hidden_state
            hidden = torch.cat([last.unsqueeze(1), hidden[:, :-1]], dim=1)  # hidden state predicting token j
            rows = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
            cols = torch.cat([torch.arange(n) for n in lengths])
            token_lp = _token_logprobs(head, hidden[rows, cols], cids[rows, cols])
        sums = np.zeros(len(lengths))
        np.add.at(sums, rows.numpy(), token_lp.cpu().numpy())
        logp[idx] = sums.reshape(len(idx), k)
        done += len(idx)
        if progress:
            progress(stage, done, len(prompts))
    return logp, counts


def rank_labels(
    lm: LoadedModel,
    prompts: Sequence[str],
    labels: Sequence[str],
    *,
    batch_size: int = 16,
    length_normalize: bool = False,
    progress: Progress | None = None,
) -> list[str]:
    """Pick, per prompt, the label with the highest log-likelihood (shared-prefix scoring).

    Summed log-likelihood favours short labels; ``length_normalize`` divides by token count.
    """
    logp, counts = score_choices(lm, prompts, [list(labels)] * len(prompts), batch_size=batch_size, progress=progress, stage="rank")
    scores = logp / counts if length_normalize else logp
    return [labels[j] for j in scores.argmax(axis=1)]


def _encode_cached(tok: Any, texts: Sequence[str]) -> list[list[int]]:
    unique = {t: None for t in texts}
    enc = tok(list(unique), add_special_tokens=False)["input_ids"]
    table = dict(zip(unique, enc))
    return [list(table[t]) for t in texts]
