"""Which Hugging Face architectures the GGUF converter writes, and what differs between them.

One row per architecture, as llama.cpp's ``convert_hf_to_gguf.py`` model classes write it:

| HF architecture       | ``general.architecture`` | rotary layout in the file | extra keys / tensors |
| LlamaForCausalLM      | llama  | Q/K rows permuted (GGML "norm" rope) | ``llama.vocab_size``, ``llama.rope.dimension_count`` |
| MistralForCausalLM    | llama  | as Llama (llama.cpp's ``LlamaModel`` registers it) | as Llama |
| Qwen2ForCausalLM      | qwen2  | HF's rotate-half layout kept (NEOX rope) | q/k/v biases |
| Qwen3ForCausalLM      | qwen3  | as Qwen2 | per-head q/k RMS norms (``attn_q_norm``, ``attn_k_norm``) |
| Gemma3ForCausalLM     | gemma3 | as Qwen2 | sliding window, every norm written as ``1 + weight``; SentencePiece vocabulary (``gguf_spm``) |

Tensor names come from the ``gguf`` package's ``TensorNameMap`` for the row's architecture, so a tensor
the architecture does not declare (``MODEL_TENSORS``) has no name and is refused, never dropped.
Gemma 3's embedding scale (sqrt(hidden)) is applied by llama.cpp's graph, so nothing is written for it.
Not rows: the multimodal Gemma 3 (4B and up, ``Gemma3ForConditionalGeneration``), Gemma 1/2, Phi,
and every other architecture, refused with a pointer to llama.cpp's converter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tunerail.errors import Problem, TunerailError

# The way out of every refusal: the field's converter, and the verification tunerail could not do for it.
CONVERT_YOURSELF = "export `merged` and convert it with llama.cpp's convert_hf_to_gguf.py, then check its score yourself"


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


def gemma3_params(writer: Any, hp: dict[str, Any]) -> None:
    """What ``Gemma3Model.set_gguf_parameters`` adds: the sliding window, the final logit soft-cap where set."""
    writer.add_sliding_window(hp["sliding_window"])
    if hp.get("final_logit_softcapping"):
        writer.add_final_logit_softcapping(hp["final_logit_softcapping"])


def gemma_norms(hf_name: str, data: Any, hp: dict[str, Any]) -> Any:
    """Gemma's RMSNorm scales by ``1 + weight``; llama.cpp's by ``weight``: every norm is written shifted by one."""
    return data + 1 if hf_name.endswith("norm.weight") else data


def gemma3_check(hp: dict[str, Any], folder: Path) -> None:
    """What llama.cpp's gemma3 graph fixes rather than reads: every 6th layer global (the rest sliding), queries scaled
    by 1/sqrt(head_dim), no attention soft-cap. A config that differs would run otherwise there, so it is refused."""
    n = hp["num_hidden_layers"]
    pattern = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(n)]
    problems = []
    if hp.get("layer_types", pattern) != pattern:
        problems.append("layer_types is not llama.cpp's gemma3 pattern (every 6th layer full attention)")
    if hp.get("query_pre_attn_scalar", head_dim(hp)) != head_dim(hp):
        problems.append(f"query_pre_attn_scalar {hp['query_pre_attn_scalar']} is not head_dim {head_dim(hp)}")
    if hp.get("attn_logit_softcapping"):
        problems.append("attn_logit_softcapping is set")
    if problems:
        raise TunerailError(
            Problem(
                "this Gemma 3 runs otherwise in llama.cpp's gemma3 graph: " + "; ".join(problems),
                file=str(folder / "config.json"),
                fix=CONVERT_YOURSELF,
            )
        )


@dataclass(frozen=True)
class GgufArch:
    """How one HF architecture is written: the ``gguf.MODEL_ARCH`` member, its extra keys, its tensor transform."""

    hf_name: str
    gguf_arch: str  # a gguf.MODEL_ARCH member name: its MODEL_ARCH_NAMES entry is general.architecture
    params: Callable[[Any, dict[str, Any]], None]
    transform: Callable[[str, Any, dict[str, Any]], Any]
    windowed: bool = False  # llama.cpp runs the sliding window (else the file's context is capped at the window)
    check: Callable[[dict[str, Any], Path], None] | None = None  # refuses a config llama.cpp's graph would run otherwise


ARCHS: dict[str, GgufArch] = {
    a.hf_name: a
    for a in (
        GgufArch("LlamaForCausalLM", "LLAMA", llama_params, rope_permuted),
        GgufArch("MistralForCausalLM", "LLAMA", llama_params, rope_permuted),
        GgufArch("Qwen2ForCausalLM", "QWEN2", no_params, as_saved),
        GgufArch("Qwen3ForCausalLM", "QWEN3", no_params, as_saved),
        GgufArch("Gemma3ForCausalLM", "GEMMA3", gemma3_params, gemma_norms, windowed=True, check=gemma3_check),
    )
}
SUPPORTED = "Llama, Mistral, Qwen2/Qwen2.5, Qwen3 and Gemma 3 (text)"


def arch_for(hparams: dict[str, Any], folder: Path) -> GgufArch:
    """The row for ``config.json``'s architecture, or a refusal naming the ones this converter writes."""
    name = (hparams.get("architectures") or ["?"])[0]
    spec = ARCHS.get(name)
    if spec is None:
        raise TunerailError(
            Problem(
                f"GGUF export writes {SUPPORTED} ({', '.join(ARCHS)}); this model is {name}",
                file=str(folder / "config.json"),
                fix=CONVERT_YOURSELF,
            )
        )
    if spec.check is not None:
        spec.check(hparams, folder)
    return spec
