"""Which Hugging Face architectures the GGUF converter writes, and what differs between them.

One row per architecture, as llama.cpp's ``convert_hf_to_gguf.py`` model classes write it:

| HF architecture       | ``general.architecture`` | rotary layout in the file | extra keys / tensors |
| LlamaForCausalLM      | llama  | Q/K rows permuted (GGML "norm" rope) | ``llama.vocab_size``, ``llama.rope.dimension_count`` |
| MistralForCausalLM    | llama  | as Llama (llama.cpp's ``LlamaModel`` registers it) | as Llama |
| Qwen2ForCausalLM      | qwen2  | HF's rotate-half layout kept (NEOX rope) | q/k/v biases |
| Qwen3ForCausalLM      | qwen3  | as Qwen2 | per-head q/k RMS norms (``attn_q_norm``, ``attn_k_norm``) |

Tensor names come from the ``gguf`` package's ``TensorNameMap`` for the row's architecture, so a tensor
the architecture does not declare (``MODEL_TENSORS``) has no name and is refused, never dropped.
Gemma is not a row: its SentencePiece vocabulary, ``(1 + weight)`` norms and embedding scale are a
separate path, and a Gemma model is refused with the same pointer to llama.cpp's converter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tunerail.errors import Problem, TunerailError


def permute(weights: Any, n_head: int, n_head_kv: int | None = None) -> Any:
    """HF's rotate-half Q/K rows -> GGML's interleaved rotary layout (llama.cpp ``LlamaModel.permute``)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def heads(hp: dict[str, Any]) -> tuple[int, int]:
    """(attention heads, key-value heads) of a ``config.json``."""
    return hp["num_attention_heads"], hp.get("num_key_value_heads") or hp["num_attention_heads"]


def rope_permuted(hf_name: str, data: Any, hp: dict[str, Any]) -> Any:
    """Llama-layout rotary: Q and K (weights and biases) permuted; everything else as saved."""
    n_head, n_kv = heads(hp)
    if hf_name.endswith(("q_proj.weight", "q_proj.bias")):
        return permute(data, n_head, n_head)
    if hf_name.endswith(("k_proj.weight", "k_proj.bias")):
        return permute(data, n_head, n_kv)
    return data


def as_saved(hf_name: str, data: Any, hp: dict[str, Any]) -> Any:
    """NEOX-layout rotary (Qwen2, Qwen3): llama.cpp rotates HF's halves as they are, so nothing moves."""
    return data


def head_dim(hp: dict[str, Any]) -> int:
    """``head_dim`` where the config gives it (Qwen3 does), else hidden size / heads."""
    return int(hp.get("head_dim") or hp["hidden_size"] // hp["num_attention_heads"])


def llama_params(writer: Any, hp: dict[str, Any]) -> None:
    """What ``LlamaModel.set_gguf_parameters`` adds to the common keys."""
    writer.add_vocab_size(hp["vocab_size"])
    writer.add_rope_dimension_count(head_dim(hp))


def no_params(writer: Any, hp: dict[str, Any]) -> None:
    """``Qwen2Model`` / ``Qwen3Model`` (causal LM) write the common keys only."""


@dataclass(frozen=True)
class GgufArch:
    """How one HF architecture is written: the ``gguf.MODEL_ARCH`` member, its extra keys, its tensor transform."""

    hf_name: str
    gguf_arch: str  # a gguf.MODEL_ARCH member name: its MODEL_ARCH_NAMES entry is general.architecture
    params: Callable[[Any, dict[str, Any]], None]
    transform: Callable[[str, Any, dict[str, Any]], Any]


ARCHS: dict[str, GgufArch] = {
    a.hf_name: a
    for a in (
        GgufArch("LlamaForCausalLM", "LLAMA", llama_params, rope_permuted),
        GgufArch("MistralForCausalLM", "LLAMA", llama_params, rope_permuted),
        GgufArch("Qwen2ForCausalLM", "QWEN2", no_params, as_saved),
        GgufArch("Qwen3ForCausalLM", "QWEN3", no_params, as_saved),
    )
}
SUPPORTED = "Llama, Mistral, Qwen2/Qwen2.5 and Qwen3"


def arch_for(hparams: dict[str, Any], folder: Path) -> GgufArch:
    """The row for ``config.json``'s architecture, or a refusal naming the ones this converter writes."""
    name = (hparams.get("architectures") or ["?"])[0]
    spec = ARCHS.get(name)
    if spec is None:
        raise TunerailError(
            Problem(
                f"GGUF export writes {SUPPORTED} ({', '.join(ARCHS)}); this model is {name}",
                file=str(folder / "config.json"),
                fix="export `merged` and convert it with llama.cpp's convert_hf_to_gguf.py, then check its score yourself",
            )
        )
    return spec
