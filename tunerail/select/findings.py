"""select's findings on a measured candidate: budget and memory fit, truncation, language (SEL020-SEL041), cheap baselines (SEL050)."""

from __future__ import annotations

from typing import Any

from tunerail.config import TunerailConfig
from tunerail.findings import Finding, Severity
from tunerail.select.recommend import Entry
from tunerail.select.result import CandidateResult


def baseline_findings(
    baselines: dict[str, dict[str, Any]], entries: list[Entry], recommended: str | None, n: int, sc: Any
) -> list[Finding]:
    """SEL050: what the cheap baselines score on the same rows; a warning when one beats the recommendation."""
    scored = {k: b for k, b in baselines.items() if "error" not in b}
    if not scored:
        return []
    shown = ", ".join(f"{k} {b['value']:.3f} [{b['low']:.3f}, {b['high']:.3f}]" for k, b in scored.items())
    failed = "".join(f"; {k} ({b['library']}) failed: {b['error']}" for k, b in baselines.items() if "error" in b)
    out = [
        Finding(
            "select.baselines",
            Severity.INFO,
            f"cheap baselines on the same {n} rows: {shown}{failed}",
            "the fine-tuned model has to beat these (the eval verdict compares against them)",
            code="SEL050",
            details={k: {m: v for m, v in b.items() if m != "outputs"} for k, b in baselines.items()},
        )
    ]
    entry = next((e for e in entries if e.name == recommended), None)
    best = max(scored, key=lambda k: scored[k]["value"])
    if entry is not None and scored[best]["value"] > entry.score["value"]:
        out[0].severity = Severity.WARNING
        out[0].message += f"; {best} scores above {recommended} before fine-tuning ({entry.score['value']:.3f})"
        out[0].fix = "fine-tune (the candidates' scores are before training) or consider shipping the cheap classifier"
    return out


def fit_findings(c: CandidateResult, config: TunerailConfig, *, language: str | None, memory_bytes: int) -> list[Finding]:
    """SEL020 over budget, SEL021 does not fit in memory, SEL022 truncation, SEL040/SEL041 language."""
    out: list[Finding] = []
    est = c.resources.get("estimate") or {}
    budget = config.budget
    if est:
        hours = est["seconds"] / 3600
        if budget.max_hours is not None and hours > budget.max_hours:
            out.append(
                Finding(
                    "select.over_budget",
                    Severity.ERROR,
                    f"{c.name}: training is estimated at {hours:.2f} h, over budget.max_hours {budget.max_hours:g} h",
                    "raise budget.max_hours, train fewer epochs or rows, or pick a smaller candidate",
                    code="SEL020",
                    details={"estimate": est},
                )
            )
        elif budget.max_cost is not None and budget.price_per_hour > 0 and est["cost"] > budget.max_cost:
            out.append(
                Finding(
                    "select.over_budget",
                    Severity.ERROR,
                    f"{c.name}: training is estimated at {est['cost']:.2f} {budget.currency}, over budget.max_cost {budget.max_cost:g}",
                    "raise budget.max_cost or pick a smaller candidate",
                    code="SEL020",
                    details={"estimate": est},
                )
            )
    need = c.resources.get("memory_lora_gb")
    if need is not None and need * 1e9 > memory_bytes:
        out.append(
            Finding(
                "select.memory",
                Severity.ERROR,
                f"{c.name}: LoRA training needs about {need:.1f} GB, this machine has {memory_bytes / 1e9:.1f} GB",
                "lower train.batch_size or model.max_seq_length, or pick a smaller candidate",
                code="SEL021",
            )
        )
    share = c.tokenizer.get("truncated_share", 0.0)
    if share > 0.05:
        out.append(
            Finding(
                "select.truncation",
                Severity.WARNING,
                f"{c.name}: {100 * share:.1f} % of the training rows are longer than model.max_seq_length "
                f"{config.model.max_seq_length} tokens with this tokenizer",
                "raise model.max_seq_length or shorten the rows",
                code="SEL022",
                details={"truncated_rows": c.tokenizer.get("truncated_rows")},
            )
        )
    declared = [x.lower() for x in c.licence.get("languages") or []]
    if language and declared and language.lower() not in declared and "multilingual" not in declared:
        out.append(
            Finding(
                "select.language_declared",
                Severity.WARNING,
                f"{c.name}: the data is in '{language}', the model card declares {', '.join(declared)}",
                "prefer a candidate trained on the data's language",
                code="SEL040",
                details={"language": language, "declared": declared},
            )
        )
    general = c.bits_per_byte_general
    ratio = config.select.language_bpb_ratio
    if language and language != "en" and general and c.bits_per_byte["value"] > ratio * general:
        out.append(
            Finding(
                "select.language_bpb",
                Severity.WARNING,
                f"{c.name}: {c.bits_per_byte['value']:.2f} bits per byte on the '{language}' data vs {general:.2f} "
                f"on the English general suite: the model does not seem to know the language",
                "prefer a candidate trained on the data's language",
                code="SEL041",
                details={"ratio": c.bits_per_byte["value"] / general},
            )
        )
    return out
