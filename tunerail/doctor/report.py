"""``report.html`` for the doctor: the result as data, rendered by ``templates/doctor.html``.

Every string from the data (row text, labels, messages quoting rows) reaches the page through
Jinja2 autoescaping; plots are inline SVG from ``tunerail.report.plots``.
"""

from __future__ import annotations

import inspect
import json
from collections import Counter
from pathlib import Path
from typing import Any

from tunerail.doctor.context import CheckContext
from tunerail.doctor.registry import all_checks
from tunerail.doctor.result import DoctorResult
from tunerail.pii import mask

MAX_FINDINGS_PER_CHECK = 50
MAX_EXAMPLE_CHARS = 600


def report_context(result: DoctorResult, ctx: CheckContext) -> dict[str, Any]:
    """Everything the template shows, as plain data."""
    texts = {r.index: f"{r.prompt}\n  ⇒ {r.completion}" for r in ctx.records}
    for rej in ctx.rejections:
        texts[rej.ref.index] = (
            json.dumps(rej.data, ensure_ascii=False) if rej.data is not None else f"(line {rej.ref.line} could not be parsed: {rej.reason})"
        )
    descriptions = {c.name: inspect.cleandoc(c.func.__doc__ or "") for c in all_checks()}
    max_examples = ctx.config.doctor.max_examples
    groups = []
    for group in result.by_check():
        items = [f for f in result.findings if f.check == group["check"]]
        shown = []
        for f in items[:MAX_FINDINGS_PER_CHECK]:
            shown.append(
                {
                    "severity": f.severity.value if hasattr(f.severity, "value") else str(f.severity),
                    "message": f.message,
                    "fix": f.fix,
                    "cluster": f.cluster,
                    "rows": [f"{r.index} (line {r.line})" for r in f.rows[:20]],
                    "more_rows": max(0, len(f.rows) - 20),
                    "examples": [
                        {"where": f"row {r.index}, line {r.line}", "text": _clip(texts.get(r.index, ""), ctx.config.doctor.phone_region)}
                        for r in f.rows[:max_examples]
                    ],
                }
            )
        groups.append(
            {
                **group,
                "description": descriptions.get(group["check"], ""),
                "entries": shown,
                "hidden": max(0, len(items) - MAX_FINDINGS_PER_CHECK),
            }
        )
    return {
        "result": result,
        "summary": result.summary,
        "groups": groups,
        "plots": _plots(result, ctx),
        "skipped": [s.to_dict() for s in result.skipped],
        "fix": result.fix.summary() if result.fix else None,
    }


def write_report(result: DoctorResult, ctx: CheckContext, path: str | Path) -> Path:
    from tunerail.report import write_report as render_to

    return render_to(path, "doctor.html", **report_context(result, ctx))


def _clip(text: str, phone_region: str = "US") -> str:
    """A shortened example with personal data and secrets masked: reports get shared (CI artifacts)."""
    text = mask(text, phone_region)  # before cutting: a key cut in half would no longer be recognised
    return text if len(text) <= MAX_EXAMPLE_CHARS else text[:MAX_EXAMPLE_CHARS] + " …"


def _plots(result: DoctorResult, ctx: CheckContext) -> list[dict[str, str]]:
    """(title, svg) pairs: lengths, class balance, duplicate cluster sizes, languages."""
    from tunerail.report import plots

    stats = result.row_stats
    out = []
    if stats.get("token_lengths"):
        limit = ctx.config.model.max_seq_length
        out.append(
            {
                "title": "Row length in tokens",
                "svg": plots.histogram(
                    stats["token_lengths"],
                    title=f"tokens per row ({ctx.config.model.base}, chat template)",
                    xlabel="tokens",
                    vline=limit,
                    vline_label=f"max_seq_length {limit}",
                ),
            }
        )
    elif stats.get("answer_chars"):
        out.append(
            {
                "title": "Answer length",
                "svg": plots.histogram(
                    stats["answer_chars"], title="answer length (characters; tokenizer unavailable)", xlabel="characters"
                ),
            }
        )
    if stats.get("labels"):
        labels = stats["labels"]
        out.append(
            {
                "title": "Class balance",
                "svg": plots.bars(list(labels), list(labels.values()), title=f"rows per class ({len(labels)} classes)", xlabel="rows"),
            }
        )
    for check, sizes in sorted(stats.get("cluster_sizes", {}).items()):
        hist = sorted(Counter(sizes).items())
        out.append(
            {
                "title": f"Cluster sizes: {check}",
                "svg": plots.bars(
                    [str(size) for size, _ in hist],
                    [n for _, n in hist],
                    title=f"{check}: clusters by size",
                    xlabel="clusters",
                    horizontal=False,
                ),
            }
        )
    if stats.get("languages"):
        langs = stats["languages"]
        out.append(
            {
                "title": "Languages",
                "svg": plots.bars(list(langs), list(langs.values()), title="rows per language (fastText lid.176)", xlabel="rows"),
            }
        )
    return out
