"""Tiny random Mistral / Qwen2 / Qwen3 (and Llama) models whose GGUF conversion can be told right from wrong.

Shared by tests/test_gguf_arch.py and bench/gguf_export.py. Each is the suite's tiny model
(``eval_fixtures.build_tiny_model``: the SmolLM2 tokenizer, 2 layers, hidden size 64) with weights
drawn at ``initializer_range=0.2`` and random norms and biases: at the usual 0.02 the attention scores
are so flat that llama.cpp gave the same logits (correlation 0.9999) with the Q/K rows in the wrong
rotary layout, so a check could not tell a right conversion from a wrong one; at 0.2 the wrong layout
drops the last-position logit correlation to 0.1-0.5 and changes every next token.
"""

from __future__ import annotations

from hashlib import sha256
from pathlib import Path
from typing import Any

QUESTIONS = ("my card was declined at the shop", "how do I top up my account by bank transfer?", "Translate to French: good morning")
# model_type -> (config overrides, general.architecture, HF architecture)
ARCHS = {
    "llama": ({}, "llama", "LlamaForCausalLM"),
    "mistral": ({"head_dim": 16, "sliding_window": 512}, "llama", "MistralForCausalLM"),
    "qwen2": ({}, "qwen2", "Qwen2ForCausalLM"),
    # transformers' GGUF loader (EXP006, the re-score) takes Qwen3's head_dim from Qwen3Config (128, every Qwen3's),
    # not from the file's key_length, so the tiny Qwen3 keeps 128; untied, as Qwen3-8B is, so output.weight is written
    "qwen3": ({"head_dim": 128, "tie_word_embeddings": False}, "qwen3", "Qwen3ForCausalLM"),
}


def tiny_arch_model(folder: Path, model_type: str) -> Path:
    """The shared tiny model in ``model_type``, with weights large enough for attention to matter.

    Not to be saved in a folder named plain "mistral": the folder name becomes ``general.name``, and transformers'
    GGUF loader reads a llama file whose ``general.name`` is exactly "mistral" as a mistral one, which it then cannot
    map (an export's name is "merged")."""
    import torch
    from eval_fixtures import build_tiny_model
    from transformers import AutoModelForCausalLM

    if (folder / "config.json").exists():
        return folder
    tmp = build_tiny_model(
        folder.with_name(folder.name + ".tmp"), hidden_size=64, model_type=model_type, initializer_range=0.2, **ARCHS[model_type][0]
    )
    model = AutoModelForCausalLM.from_pretrained(tmp)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # norms (ones at init) and biases (zeros at init) random, so a misplaced one shows
        for name, param in model.named_parameters():
            if param.ndim == 1:
                noise = torch.randn(param.shape, generator=generator)
                param.copy_(1 + 0.5 * noise if "norm" in name else noise)
    model.save_pretrained(tmp)
    tmp.rename(folder)
    return folder


def qwen_tokenizer_hash(folder: Path) -> str:
    """The pre-tokenizer hash of a tiny qwen2/qwen3 model's tokenizer.

    transformers loads it as ``Qwen2Tokenizer``, which puts Qwen2's pre-tokenizer over the SmolLM2 vocabulary: a
    tokenizer no llama.cpp table lists. Callers register this hash as ``qwen2``, as llama.cpp's table does for each
    real Qwen tokenizer; the same-tokens comparison is what vouches for the name."""
    from transformers import AutoTokenizer

    from tunerail.export.gguf import CHECK_TEXT

    tok = AutoTokenizer.from_pretrained(str(folder))
    return sha256(str(tok.encode(CHECK_TEXT)).encode()).hexdigest()


def compare(folder: Path, out: Path) -> dict[str, Any]:
    """Convert ``folder`` to F16 GGUF, then llama.cpp running the file against transformers running the folder."""
    import time

    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunerail.export.gguf import convert, llama_cpp_logits

    start = time.perf_counter()
    path = convert(folder, out, "f16")
    seconds = time.perf_counter() - start
    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    prompts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True) for q in QUESTIONS]
    ids, logits = llama_cpp_logits(path, prompts)
    trained = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    refs = []
    for row in trained:
        with torch.no_grad():
            refs.append(model(torch.tensor([row])).logits[0, -1].numpy())
    return {
        "path": path,
        "seconds": seconds,
        "refs": refs,
        "trained": trained,
        "same_tokens": sum(a == b for a, b in zip(ids, trained)),
        "same_next": sum(int(a.argmax()) == int(b.argmax()) for a, b in zip(logits, refs)),
        "min_corr": min(float(np.corrcoef(a, b)[0, 1]) for a, b in zip(logits, refs)),
    }


def tiny_gemma3(folder: Path) -> Path:
    """A tiny random Gemma 3 (2 sliding-window layers, hidden size 64) with the bundled Gemma 3 270M tokenizer and
    chat template; head_dim and query_pre_attn_scalar 256, as every Gemma 3 text model has them. Norms random, so
    the ``1 + weight`` shift shows."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tunerail.models import resolve_model

    if (folder / "config.json").exists():
        return folder
    source = Path(resolve_model("bundled:gemma3"))
    tmp = folder.with_name(folder.name + ".tmp")
    torch.manual_seed(0)
    cfg = AutoConfig.for_model(
        "gemma3_text",
        vocab_size=262144,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=256,
        query_pre_attn_scalar=256,
        sliding_window=512,
        max_position_embeddings=1024,
        initializer_range=0.2,
        bos_token_id=2,
        eos_token_id=1,
        pad_token_id=0,
        tie_word_embeddings=True,
    )
    model = AutoModelForCausalLM.from_config(cfg)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, param in model.named_parameters():
            if param.ndim == 1:
                param.copy_(0.5 * torch.randn(param.shape, generator=generator))
    model.save_pretrained(tmp)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(source / name, tmp / name)
    tmp.rename(folder)
    return folder
