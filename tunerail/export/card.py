"""The model card an export ships with (``huggingface_hub.ModelCard``): what was judged, on what, against what.

Metadata (the YAML header the Hub reads): ``base_model``, ``license``, ``library_name``, ``tags``,
``pipeline_tag``. Body: intended use, the verdict with every alternative on the frozen test rows,
criteria fixed before training, forgetting, lineage (store ids of the data snapshot, the frozen test
split and the checkpoint) and the export's own verification. Every value comes from files the run
wrote (eval/report.json, train.json, split.json, export.json); nothing is typed in by hand.
"""

from __future__ import annotations

from typing import Any

PIPELINE_TAG = {
    "classification": "text-classification",
    "extraction": "text-generation",
    "generation": "text-generation",
    "chat": "text-generation",
}


def hub_base(base_model: str) -> str:
    """What the Hub's ``base_model`` field can name: a bundled model's source repo, else the id or folder name."""
    from tunerail.models import BUNDLED

    if base_model.startswith("bundled:"):
        spec = BUNDLED.get(base_model.split(":", 1)[1])
        if spec is not None and spec.hub_id:
            return spec.hub_id
    return base_model


_MERGED = {"merged": " merged into the base weights", "gguf": " merged into the base weights, converted to GGUF"}


def card_metadata(config: Any, base_model: str, licence: str | None, kind: str) -> dict[str, Any]:
    """The card's YAML header (``ModelCardData`` fields)."""
    meta: dict[str, Any] = {
        "base_model": hub_base(base_model),
        "library_name": {"adapter": "peft", "gguf": "gguf"}.get(kind, "transformers"),
        "license": licence or "other",
        "pipeline_tag": PIPELINE_TAG.get(config.task, "text-generation"),
        "tags": ["tunerail", config.task, "lora"],
    }
    return meta


def card_text(config: Any, report: dict[str, Any] | None, export: dict[str, Any]) -> str:
    """The Markdown body (after the metadata header)."""
    lines = [
        f"# {config.project.name}",
        "",
        f"A model for {config.task} fine-tuned with tunerail from `{export['base_model']}`"
        f"{' (dequantised from the bundled GGUF of ' + hub_base(export['base_model']) + ')' if export['base_model'].startswith('bundled:') else ''} "
        f"(LoRA adapter{_MERGED.get(export['kind'], '')}).",
        "",
        "## Intended use",
        "",
        _intended_use(config),
        "",
    ]
    lines += _verdict_section(config, report, export)
    lines += _verification_section(export)
    lines += _lineage_section(report, export)
    return "\n".join(lines) + "\n"


def build_card(config: Any, report: dict[str, Any] | None, export: dict[str, Any], licence: str | None) -> Any:
    """A ``huggingface_hub.ModelCard`` ready to ``save()`` or ``push_to_hub()``."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(**card_metadata(config, export["base_model"], licence, export["kind"]))
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + card_text(config, report, export))


def _intended_use(config: Any) -> str:
    prompt = config.prompts[0]
    system = f" System prompt: \u201c{prompt.system}\u201d." if getattr(prompt, "system", None) else ""
    use = "commercial use allowed by the project" if config.project.commercial else "non-commercial use"
    return (
        f"Task: {config.task}, judged on `{config.criteria.metric}`.{system} Prompt template: `{prompt.template}` "
        f"(apply the tokenizer's chat template saved with this model). Declared for {use}. Out of scope: inputs unlike the "
        "training data (watch `tunerail monitor` for drift), any use the base model's licence forbids."
    )


def _verdict_section(config: Any, report: dict[str, Any] | None, export: dict[str, Any]) -> list[str]:
    if not report:
        return ["## Verdict", "", "This run was never evaluated (`tunerail eval`): nothing here is verified.", ""]
    metric = report.get("metric") or config.criteria.metric
    out = ["## Verdict", "", f"**{report.get('verdict', '?')}** on {report.get('rows', '?')} frozen test rows (`{metric}`, 95 % CIs)."]
    if export.get("forced"):
        out.append(f"Exported with `--force` although the verdict is {report.get('verdict')}.")
    out += ["", "| model | library | " + metric + " | 95 % CI |", "| --- | --- | --- | --- |"]
    tuned = (report.get("metrics") or {}).get("tuned", {}).get(metric)
    if tuned:
        out.append(f"| **this model** | tunerail | **{tuned['value']:.3f}** | {tuned['low']:.3f}-{tuned['high']:.3f} |")
    for b in report.get("baselines") or []:
        est = b.get("estimate")
        if est:
            library = b.get("library") or ("tunerail" if b.get("kind") == "llm" else "")
            out.append(f"| {b.get('label', b.get('name'))} | {library} | {est['value']:.3f} | {est['low']:.3f}-{est['high']:.3f} |")
    crit = report.get("criteria") or {}
    out += ["", "Criteria fixed before training (hashed with the frozen test set): " + _criteria_line(crit)]
    forgetting = report.get("forgetting")
    if forgetting:
        worst = forgetting.get("worst")
        worst_text = f"{worst:+.1%}" if isinstance(worst, (int, float)) else "not measured"
        out.append(
            f"Forgetting on the general-capability suite: worst relative change {worst_text} (budget {forgetting.get('budget', '?')})."
        )
    failed = [f for f in report.get("findings", []) if f.get("severity") == "error"]
    if failed:
        out += ["", "Why not READY:"] + [f"- {f['code']}: {f['message']}" for f in failed]
    return out + [""]


def _criteria_line(crit: dict[str, Any]) -> str:
    keys = ("metric", "threshold", "min_improvement", "margin", "max_forgetting", "decision", "baseline")
    return ", ".join(f"{k} {crit[k]}" for k in keys if crit.get(k) is not None) or "none recorded"


def _verification_section(export: dict[str, Any]) -> list[str]:
    scores = export.get("scores") or {}
    if not scores:
        return ["## Export verification", "", "Not verified (`--no-verify`).", ""]
    d, e = scores["difference"], scores["export"]
    return [
        "## Export verification",
        "",
        f"Loaded back as a user loads it and re-scored on the frozen test rows: {e['value']:.3f} (CI {e['low']:.3f}-{e['high']:.3f}); "
        f"paired difference to the judged model {d['value']:+.3f} (CI {d['low']:+.3f} to {d['high']:+.3f}); "
        f"{scores.get('changed_rows', 0)} answers changed.",
        "",
    ]


def _lineage_section(report: dict[str, Any] | None, export: dict[str, Any]) -> list[str]:
    lineage = dict((report or {}).get("lineage") or {})
    frozen = (report or {}).get("frozen") or {}
    if frozen.get("test_hash"):
        lineage["frozen_test_sha256"] = frozen["test_hash"]
    lineage["adapter_sha256"] = export.get("adapter_sha256")
    rows = [f"- {k}: `{v}`" for k, v in sorted(lineage.items()) if v and isinstance(v, (str, int, float))]
    return ["## Lineage", "", *rows, ""] if rows else []
