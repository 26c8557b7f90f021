"""Which modules LoRA adapts, and the model the recipe trains (LoRA, QLoRA or full).

Targets default to the attention projections, found by name per architecture: peft's own
per-architecture table first, then the common projection names, so a new architecture still
works when its names follow the usual conventions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunerail.errors import Problem, TunerailError

# Attention projection names across the common families (Llama/Mistral/Qwen/Gemma, GPT-2,
# GPT-NeoX, Falcon, OPT, BERT-like encoders).
_ATTENTION_NAMES = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "c_attn",
    "c_proj",
    "query_key_value",
    "query",
    "key",
    "value",
    "out_proj",
    "Wqkv",
    "dense",
)


def detect_target_modules(model: Any) -> list[str]:
    """LoRA target module names for ``model``'s architecture.

    peft's ``TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`` covers q/v only for many
    families; adapting q/k/v/o is the stronger default for small models (measured on SmolLM2),
    so we take every attention projection name that exists in the model, and fall back to
    peft's table.
    """
    import torch

    linear_names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    found = [n for n in ("q_proj", "k_proj", "v_proj", "o_proj") if n in linear_names]
    if found:
        return found
    try:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as table

        mapped = table.get(getattr(model.config, "model_type", ""), None)
        if mapped:
            return list(mapped)
    except ImportError:  # pragma: no cover - older peft
        pass
    found = [n for n in _ATTENTION_NAMES if n in linear_names]
    if not found:
        raise TunerailError(
            Problem(
                f"could not detect LoRA target modules for model type {getattr(model.config, 'model_type', '?')!r}",
                field="train.lora.target_modules",
                fix=f"name them in train.lora.target_modules; linear layers in this model: {', '.join(sorted(linear_names))}",
            )
        )
    return found


@dataclass
class ParamCount:
    trainable: int
    total: int

    @property
    def share(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"trainable params: {self.trainable:,} of {self.total:,} ({100 * self.share:.2f} %)"


def count_parameters(model: Any) -> ParamCount:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return ParamCount(trainable, total)


def cuda_bitsandbytes_available() -> tuple[bool, str]:
    """(ok, reason) for QLoRA: it needs a CUDA device and the bitsandbytes package."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        return False, "QLoRA needs a CUDA GPU and none is visible"
    if importlib.util.find_spec("bitsandbytes") is None:
        return False, "QLoRA needs the bitsandbytes package, which is not installed"
    return True, ""


def load_base_model(base: str, *, method: str, bf16: bool) -> Any:
    """The base causal LM in the dtype/quantisation the method needs."""
    import torch

    from tunerail.models import load_causal_lm, resolve_model

    if method == "qlora":
        ok, reason = cuda_bitsandbytes_available()
        if not ok:
            raise TunerailError(
                Problem(reason, field="train.method", fix="use train.method: lora (same quality on small models, no GPU needed)")
            )
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig
        from peft import prepare_model_for_kbit_training

        quant = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_use_double_quant=True
        )
        model = AutoModelForCausalLM.from_pretrained(resolve_model(base), quantization_config=quant, device_map={"": 0})
        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    # LoRA trains fp32 adapters over bf16 base weights (measured ~13 % faster than autocast);
    # full fine-tuning keeps fp32 master weights and uses autocast instead.
    dtype = "bfloat16" if (bf16 and method == "lora") else "float32"
    return load_causal_lm(base, dtype=dtype)


def prepare_model(model: Any, *, method: str, lora: Any, seed: int) -> Any:
    """Wrap ``model`` with a LoRA adapter (lora/qlora) or make every weight trainable (full)."""
    import torch

    if method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    targets = lora.target_modules or detect_target_modules(model)
    torch.manual_seed(seed)  # LoRA A init is random: seed it so runs (and ranks) agree
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
        bias="none",
        use_dora=lora.variant == "dora",
        use_rslora=lora.variant == "rslora",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise TunerailError(
            Problem(
                f"LoRA could not be applied: {exc}",
                field="train.lora.target_modules",
                fix="leave target_modules empty to detect them, or list linear layer names of this model",
            )
        ) from None


def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bf16 natively on this CPU (else bf16 is emulated and slower than fp32)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_bf16(setting: bool | str) -> bool:
    """Whether ``train.bf16`` (true, false, ``auto``, ``autocast``) means bf16 on this machine."""
    import torch

    if setting == "auto":
        # GPUs: bf16 where supported. CPUs: bf16 autocast where the chip has native bf16 (AVX512-BF16/AMX);
        # measured on an idle 2-core EPYC: 341 vs 116 tokens/s fp32 (bench/train.py, results/train.json).
        if torch.cuda.is_available():
            return torch.cuda.is_bf16_supported()
        return cpu_has_native_bf16()
    if setting == "autocast":
        return True
    return bool(setting)
