"""select.json (the SelectResult) and report.html (self-contained, every data string escaped)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunerail.io import write_atomic
from tunerail.report import plots, write_report


def table_rows(result: Any) -> list[dict[str, Any]]:
    """One row per candidate, in ranking order: what the CLI table and the report show."""
    order = {name: i for i, name in enumerate(result.ranking)}
    rows = []
    for c in sorted(result.candidates, key=lambda c: order.get(c.name, len(order))):
        est = c.resources.get("estimate") or {}
        rows.append(
            {
                "name": c.name,
                "params_m": c.params / 1e6,
                "score": c.score,
                "setting": c.score["setting"],
                "scores": c.scores,
                "bpb": c.bits_per_byte,
                "bpb_general": c.bits_per_byte_general,
                "tokens_per_word": c.tokenizer.get("tokens_per_word"),
                "chars_per_token": c.tokenizer.get("chars_per_token"),
                "truncated_share": c.tokenizer.get("truncated_share"),
                "memory_lora_gb": c.resources.get("memory_lora_gb"),
                "memory_full_gb": c.resources.get("memory_full_gb"),
                "minutes": est.get("seconds", 0) / 60 if est else None,
                "cost": est.get("cost") if est else None,
                "licence": c.licence.get("spdx") or c.licence.get("raw") or "none",
                "licence_class": c.licence.get("licence_class"),
                "eligible": c.eligible,
                "blocked": c.blocked,
                "recommended": c.name == result.recommended,
                "resumed": c.resumed,
            }
        )
    return rows


def write_select_report(result: Any, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    select_json = out_dir / "select.json"
    report_html = out_dir / "report.html"
    result.select_json, result.report_html = str(select_json), str(report_html)
    write_atomic(select_json, json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str))
    rows = table_rows(result)
    plot = plots.scatter_ci(
        [r["params_m"] for r in rows],
        [r["score"] for r in rows],
        [r["name"] for r in rows],
        title=f"{result.metric} (95 % CI) against model size",
        xlabel="parameters (millions)",
        ylabel=result.metric,
        highlight=result.recommended,
    )
    write_report(
        report_html,
        "select.html",
        result=result,
        rows=rows,
        plot=plot,
        findings=[f.to_dict() for f in result.findings],
        data=result.to_dict(),
    )
