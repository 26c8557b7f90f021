"""GGUF export beyond Llama: Mistral, Qwen2 and Qwen3 converted, then run by llama.cpp as transformers runs them.

Each architecture is a tiny random model (the SmolLM2 tokenizer, 2 layers) whose weights are drawn with
``initializer_range=0.2`` and whose norms and biases are random too: at the usual 0.02 the attention
scores are so flat that llama.cpp gave the same logits (correlation 0.9999) with the Q/K rows in the
wrong rotary layout, so the test could not tell a right conversion from a wrong one. At 0.2 the wrong
layout drops the last-position logit correlation to 0.1-0.5 and changes every next token, which
``test_the_wrong_rotary_layout_is_caught`` keeps checking.
"""

from __future__ import annotations

import importlib.util
from hashlib import sha256
from pathlib import Path

import pytest

from tunerail.errors import TunerailError

needs_llama_cpp = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")

QUESTIONS = ("my card was declined at the shop", "how do I top up my account by bank transfer?", "Translate to French: good morning")
# model_type -> (config overrides, general.architecture, HF architecture)
ARCHS = {
    "mistral": ({"head_dim": 16, "sliding_window": 512}, "llama", "MistralForCausalLM"),
    "qwen2": ({}, "qwen2", "Qwen2ForCausalLM"),
    # transformers' GGUF loader (EXP006, the re-score) takes Qwen3's head_dim from Qwen3Config (128, every Qwen3's),
    # not from the file's key_length, so the tiny Qwen3 keeps 128
    "qwen3": ({"head_dim": 128}, "qwen3", "Qwen3ForCausalLM"),
}


def _tiny(folder: Path, model_type: str) -> Path:
    """The shared tiny model in another architecture, with weights large enough for attention to matter."""
    import torch
    from eval_fixtures import build_tiny_model
    from transformers import AutoModelForCausalLM

    build_tiny_model(folder, hidden_size=64, model_type=model_type, initializer_range=0.2, **ARCHS[model_type][0])
    model = AutoModelForCausalLM.from_pretrained(folder)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # norms (ones at init) and biases (zeros at init) random, so a misplaced one shows
        for name, param in model.named_parameters():
            if param.ndim == 1:
                noise = torch.randn(param.shape, generator=generator)
                param.copy_(1 + 0.5 * noise if "norm" in name else noise)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("archs")
    # not named plain "mistral": the folder name is general.name, and transformers' GGUF loader reads a llama file
    # whose general.name is exactly "mistral" as a mistral one, which it then cannot map (an export is named "merged")
    return {model_type: _tiny(root / f"tiny-{model_type}", model_type) for model_type in ARCHS}


@pytest.fixture
def qwen_pre_tokenizer(monkeypatch, tiny_models):
    """transformers loads a qwen2/qwen3 model's tokenizer as ``Qwen2Tokenizer``, which puts Qwen2's pre-tokenizer
    over the SmolLM2 vocabulary: a tokenizer no llama.cpp table lists. Its hash is registered as ``qwen2`` here, as
    llama.cpp's table does for each real Qwen tokenizer; the same-tokens check below is what vouches for the name."""
    from transformers import AutoTokenizer

    import tunerail.export.gguf as GG

    tok = AutoTokenizer.from_pretrained(str(tiny_models["qwen2"]))
    monkeypatch.setitem(GG.PRE_TOKENIZERS, sha256(str(tok.encode(GG.CHECK_TEXT)).encode()).hexdigest(), "qwen2")


def _compare(folder: Path, out: Path) -> dict:
    """llama.cpp running the converted file against transformers running the folder, on chat prompts."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunerail.export.gguf import convert, llama_cpp_logits

    path = convert(folder, out, "f16")
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
        "refs": refs,
        "trained": trained,
        "same_tokens": sum(a == b for a, b in zip(ids, trained)),
        "same_next": sum(int(a.argmax()) == int(b.argmax()) for a, b in zip(logits, refs)),
        "min_corr": min(float(np.corrcoef(a, b)[0, 1]) for a, b in zip(logits, refs)),
    }


@needs_llama_cpp
@pytest.mark.parametrize("model_type", list(ARCHS))
def test_each_architecture_runs_in_llama_cpp_as_in_transformers(model_type, tiny_models, qwen_pre_tokenizer, tmp_path):
    from llama_cpp import Llama

    got = _compare(tiny_models[model_type], tmp_path / "model-f16.gguf")
    assert got["same_tokens"] == got["same_next"] == len(QUESTIONS), got  # so Qwen2's random q/k/v biases and
    assert got["min_corr"] > 0.999, got  # Qwen3's random q/k norms are read where transformers applies them
    meta = Llama(model_path=str(got["path"]), vocab_only=True, verbose=False).metadata  # the file as llama.cpp reads it
    arch = ARCHS[model_type][1]
    assert meta["general.architecture"] == arch
    # llama.cpp attends over the whole context: a sliding-window model's file gets the window as its context
    assert meta[f"{arch}.context_length"] == ("512" if model_type == "mistral" else "1024")


@needs_llama_cpp
@pytest.mark.parametrize("model_type", ["mistral", "qwen2"])
def test_the_wrong_rotary_layout_is_caught(model_type, tiny_models, qwen_pre_tokenizer, tmp_path, monkeypatch):
    """Mistral written without the Llama Q/K permutation, Qwen2 written with it: llama.cpp's answers fall apart."""
    import tunerail.export.gguf_arch as GA

    spec = GA.ARCHS[ARCHS[model_type][2]]
    wrong = GA.as_saved if spec.transform is GA.rope_permuted else GA.rope_permuted
    monkeypatch.setitem(GA.ARCHS, spec.hf_name, GA.GgufArch(spec.hf_name, spec.gguf_arch, spec.params, wrong))
    got = _compare(tiny_models[model_type], tmp_path / "model-f16.gguf")
    assert got["same_tokens"] == len(QUESTIONS)  # the vocabulary is fine; the weights are not
    assert got["same_next"] < len(QUESTIONS) and got["min_corr"] < 0.9, got


@pytest.mark.slow
@needs_llama_cpp
@pytest.mark.parametrize("model_type", ["qwen2", "qwen3"])
def test_transformers_reads_the_qwen_files_as_export_verification_does(model_type, tiny_models, qwen_pre_tokenizer, tmp_path):
    """EXP006 and the re-score load the GGUF with transformers' own loader (``load_gguf``): a Qwen file must load there
    too, with the same next tokens (a Mistral file is a llama file, the path the Llama export tests already take)."""
    import torch

    from tunerail.export.gguf import load_gguf

    got = _compare(tiny_models[model_type], tmp_path / "model-f16.gguf")
    lm = load_gguf(got["path"], "f")
    with torch.no_grad():
        picks = [int(lm.model(torch.tensor([row])).logits[0, -1].argmax()) for row in got["trained"]]
    assert picks == [int(r.argmax()) for r in got["refs"]]


def test_an_architecture_the_converter_does_not_write_is_refused_naming_those_it_does(tmp_path):
    from tunerail.export.gguf import convert

    (tmp_path / "config.json").write_text('{"architectures": ["Gemma3ForCausalLM"]}')
    with pytest.raises(TunerailError, match=r"Llama, Mistral, Qwen2/Qwen2.5 and Qwen3 .*this model is Gemma3ForCausalLM") as err:
        convert(tmp_path, tmp_path / "model-f16.gguf", "f16")
    assert "convert_hf_to_gguf.py" in str(err.value)
