"""Verified, not assumed: an export is loaded back the way a user serves it and judged again.

Export is where good fine-tunes silently break in every framework's issue tracker (quality drops
after merging, a rewritten ``eos_token``, a chat template that differs between training and
serving). So each exported folder is

1. loaded with the library a user would use (transformers for merged safetensors, transformers +
   peft for the adapter, transformers' GGUF loader for a GGUF, which dequantises it), with the
   tokenizer saved *inside* the export (the GGUF's own vocabulary and template), not our cache's;
2. compared with the training tokenizer: chat template, EOS/BOS/PAD tokens, the model's
   ``generation_config`` end token;
3. re-scored on the frozen test rows with the run's metric and prompt, and compared row by row with
   the in-lab model (base + adapter as eval loaded it) by a paired bootstrap.

| code   | check                     | severity | when |
| EXP001 | export.template_changed   | error    | the exported chat template differs from training's |
| EXP002 | export.special_tokens     | error    | EOS / BOS / PAD differ, or generation_config's end token is not the tokenizer's EOS |
| EXP003 | export.score_drop         | error    | the CI of (export - in-lab) on the main metric reaches below -criteria.margin |
| EXP004 | export.load_failed        | error    | the export cannot be loaded back |
| EXP005 | export.verified           | info     | scores agree within the margin (both scores and the paired difference) |
| EXP006 | export.weights_differ     | error    | the export's next-token choice differs from the judged model's on more than 5 % of test prompts |
| EXP007 | export.runtime_differs    | error    | a GGUF run by llama.cpp tokenises a test prompt otherwise than training, or picks another next token on more than 5 % |

EXP007 runs where llama-cpp-python is installed: transformers undoes the converter's Q/K permutation
when it dequantises, so a layout bug would cancel out there; llama.cpp runs the file as written.

EXP006 catches a damaged tensor even where the task score cannot (a model that scores near zero
scores near zero damaged too): merging LoRA into the base is exact up to float rounding, which flips
the top next token only on near-ties, so more than 5 % of prompts with another first token means the
weights are not the ones that were judged.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

from tunerail.data.records import Record
from tunerail.eval import generate as G
from tunerail.eval.rescore import Rescored, paired_difference, rescore
from tunerail.eval.verdict import LOWER_IS_BETTER
from tunerail.findings import Finding, Severity


def folder_fingerprint(folder: Path) -> str:
    """SHA-256 over every file's name and bytes: a corrupted tensor can never reuse a cached score."""
    digest = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            digest.update(str(f.relative_to(folder)).encode())
            with open(f, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def load_export(folder: Path, kind: str, base_model: str) -> G.LoadedModel:
    """The export as a user loads it: ``from_pretrained`` on the folder (peft on the base for an adapter)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunerail.models import compute_device, load_causal_lm

    if kind == "gguf":
        from tunerail.export.gguf import gguf_file, load_gguf

        return load_gguf(gguf_file(folder), f"export-gguf-{folder_fingerprint(folder)}", name="export:gguf")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tokenizer.padding_side = "left"
    if kind == "adapter":
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_causal_lm(base_model), str(folder)).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(str(folder), torch_dtype="auto")
        model = model.float() if compute_device() == "cpu" else model
    model.to(compute_device()).eval()
    return G.LoadedModel(model, tokenizer, f"export:{kind}", f"export-{kind}-{folder_fingerprint(folder)}")


AGREEMENT_FLOOR = 0.95
AGREEMENT_PROMPTS = 64


def next_tokens(lm: G.LoadedModel, prompts: Sequence[str], batch_size: int = 16) -> list[int]:
    """The greedy next token of every prompt (one forward per batch)."""
    import torch

    picks: list[int] = []
    for start in range(0, len(prompts), batch_size):
        enc = lm.tokenizer(list(prompts[start : start + batch_size]), return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            picks += lm.model(**enc.to(lm.model.device)).logits[:, -1, :].argmax(-1).cpu().tolist()
    return picks


def next_token_agreement(a: G.LoadedModel, b: G.LoadedModel, prompts: Sequence[str], batch_size: int = 16) -> float:
    """Share of prompts on which both models pick the same next token (greedy, one forward each)."""
    return _same(next_tokens(a, prompts, batch_size), next_tokens(b, prompts, batch_size))


def _same(a: Sequence[Any], b: Sequence[Any]) -> float:
    return sum(x == y for x, y in zip(a, b)) / max(len(a), 1)


def runtime_findings(folder: Path, ref: G.LoadedModel, prompts: Sequence[str], batch_size: int) -> tuple[dict[str, Any], list[Finding]]:
    """EXP007: the GGUF as llama.cpp runs it (llama-cpp-python) against the judged model, where llama-cpp-python is installed."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return {"checked": False, "why": "llama-cpp-python is not installed"}, []
    from tunerail.export.gguf import gguf_file, llama_cpp_next_tokens

    ids, picks = llama_cpp_next_tokens(gguf_file(folder), prompts)
    trained = [ref.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    scores = {
        "checked": True,
        "same_tokens": _same(ids, trained),
        "next_token_agreement": _same(picks, next_tokens(ref, prompts, batch_size)),
    }
    if scores["same_tokens"] == 1.0 and scores["next_token_agreement"] >= AGREEMENT_FLOOR:
        return scores, []
    return scores, [
        _finding(
            "EXP007",
            "export.runtime_differs",
            f"llama.cpp runs the GGUF otherwise than the judged model: {scores['same_tokens']:.0%} of {len(prompts)} test prompts "
            f"tokenised as in training, {scores['next_token_agreement']:.0%} with the same next token",
            "do not ship this GGUF: convert `merged` with llama.cpp's convert_hf_to_gguf.py and export again to compare",
            kind="gguf",
            **scores,
        )
    ]


def tokenizer_findings(kind: str, trained: Any, exported: Any, generation_eos: Any = None) -> list[Finding]:
    """EXP001/EXP002: what the exported tokenizer (and generation config) would change at serving time."""
    out: list[Finding] = []
    if (trained.chat_template or "") != (exported.chat_template or ""):
        out.append(
            _finding(
                "EXP001",
                "export.template_changed",
                f"the {kind} export's chat template differs from the one the model was trained with",
                "save the training tokenizer (with its chat_template) into the export folder",
                kind=kind,
            )
        )
    changed = {
        name: (getattr(trained, name), getattr(exported, name))
        for name in ("eos_token", "bos_token", "pad_token")
        if getattr(trained, name) != getattr(exported, name)
    }
    eos_ids = set(generation_eos) if isinstance(generation_eos, (list, tuple)) else {generation_eos}
    if generation_eos is not None and exported.eos_token_id not in eos_ids:
        changed["generation_config.eos_token_id"] = (exported.eos_token_id, generation_eos)
    if changed:
        listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
        out.append(
            _finding(
                "EXP002",
                "export.special_tokens",
                f"the {kind} export changes special tokens ({listed}): the model would not stop where it was trained to",
                "export again from the run folder; do not edit the tokenizer files of an export",
                kind=kind,
                changed={k: [str(a), str(b)] for k, (a, b) in changed.items()},
            )
        )
    return out


def score_findings(
    kind: str, exported: Rescored, reference: Rescored, metric: str, margin: float, resamples: int
) -> tuple[dict[str, Any], list[Finding]]:
    """EXP003 when a drop larger than the margin cannot be ruled out (CI bound, as the verdict decides)."""
    diff = paired_difference(exported, reference, metric, resamples)
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    worst = min(sign * diff["low"], sign * diff["high"])  # the CI end that is worst for the export
    ref_est, exp_est = reference.estimate(metric, resamples), exported.estimate(metric, resamples)
    scores = {"in_lab": ref_est, "export": exp_est, "difference": diff, "changed_rows": _changed(exported.outputs, reference.outputs)}
    text = (
        f"{metric} {exp_est['value']:.3f} (CI {exp_est['low']:.3f}-{exp_est['high']:.3f}) vs in-lab {ref_est['value']:.3f}; "
        f"difference {diff['value']:+.3f} (CI {diff['low']:+.3f} to {diff['high']:+.3f}), {scores['changed_rows']} answers changed"
    )
    if worst < -margin:
        return scores, [
            _finding(
                "EXP003",
                "export.score_drop",
                f"the {kind} export may score worse than the model that was judged: {text}; a drop beyond the margin {margin} is not ruled out",
                "do not ship this export: re-export (check the base model files and dtype), or serve the adapter format",
                kind=kind,
                **scores,
            )
        ]
    return scores, [
        Finding(
            "export.verified",
            Severity.INFO,
            f"the {kind} export scores as the judged model: {text}",
            "",
            code="EXP005",
            details={"kind": kind, **scores},
        )
    ]


def weight_findings(kind: str, agreement: float, prompts: int) -> list[Finding]:
    """EXP006 when the export's first-token choices disagree with the judged model's beyond rounding."""
    if agreement >= AGREEMENT_FLOOR:
        return []
    return [
        _finding(
            "EXP006",
            "export.weights_differ",
            f"the {kind} export picks another next token than the judged model on {1 - agreement:.0%} of {prompts} test prompts: "
            "its weights are not the ones that were judged",
            "export again; if it repeats, check the base model files (a damaged download) and the adapter's hash",
            kind=kind,
            agreement=agreement,
        )
    ]


def verify_folder(
    config: Any,
    folder: Path,
    kind: str,
    base_model: str,
    records: Sequence[Record],
    reference: tuple[G.LoadedModel, Rescored],
    *,
    labels: Sequence[str],
    cache: Path | None,
) -> tuple[dict[str, Any], list[Finding]]:
    """Load ``folder`` back, check its tokenizer and weights against training's, re-score it against ``reference``."""
    from tunerail.models import load_tokenizer
    from tunerail.prompting import pick_template, prompt_for

    ref_lm, ref_scores = reference

    try:
        lm = load_export(folder, kind, base_model)
    except Exception as exc:  # any failure to load is the finding: a user would hit the same
        return {}, [
            _finding(
                "EXP004",
                "export.load_failed",
                f"the {kind} export cannot be loaded back: {exc}",
                "export again; check disk space",
                kind=kind,
            )
        ]
    generation_eos = getattr(getattr(lm.model, "generation_config", None), "eos_token_id", None)
    findings = tokenizer_findings(kind, load_tokenizer(base_model), lm.tokenizer, generation_eos)
    template = pick_template(config)
    probe = [prompt_for(ref_lm.tokenizer, r, template) for r in records[:AGREEMENT_PROMPTS]]
    agreement = next_token_agreement(lm, ref_lm, probe, batch_size=config.eval.batch_size)
    findings += weight_findings(kind, agreement, len(probe))
    exported = rescore(config, lm, records, labels=labels, cache=cache, name=f"export_{kind}")
    scores, more = score_findings(kind, exported, ref_scores, config.criteria.metric, config.criteria.margin, config.eval.bootstrap)
    scores.update(seconds=round(exported.seconds, 2), next_token_agreement=agreement)
    if kind == "gguf":
        scores["llama_cpp"], runtime = runtime_findings(folder, ref_lm, probe, config.eval.batch_size)
        more += runtime
    return scores, findings + more


def _changed(a: Sequence[str], b: Sequence[str]) -> int:
    return sum(x != y for x, y in zip(a, b))


def _finding(code: str, check: str, message: str, fix: str, **details: Any) -> Finding:
    return Finding(check, Severity.ERROR, message, fix, code=code, details=details)
