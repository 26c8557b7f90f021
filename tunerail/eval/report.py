"""report.json (the EvalResult, canonical JSON) and report.html (self-contained, escaped).

All text from data or models goes through Jinja2 autoescape; plots are inline SVG from
``tunerail.report.plots`` (matplotlib escapes labels in its SVG writer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from tunerail.findings import Severity, dumps
from tunerail.report import plots, write_report
from tunerail.io import write_atomic

HEADLINE = {
    "classification": ["accuracy", "macro_f1", "accuracy_ranking"],
    "generation": ["rougeL", "rouge1", "bleu", "chrf", "exact_match"],
    "chat": ["rougeL", "rouge1", "bleu", "chrf", "exact_match"],
    "extraction": ["field_f1", "field_precision", "field_recall", "exact_match"],
}


def build_plots(result: Any) -> dict[str, str]:
    """SVG strings keyed by section; a plot whose data is missing is simply absent."""
    out = training_plots(result.training or {})
    names, points, lows, highs = [], [], [], []
    for m in headline_metrics(result):
        for model in result.metrics:
            est = result.metrics.get(model, {}).get(m)
            if est is not None:
                names.append(f"{model} {m}")
                points.append(est["value"])
                # a corpus metric's percentile interval can miss its full-sample value (skewed
                # resamples); the bars must still contain the point
                lows.append(min(est["low"], est["value"]))
                highs.append(max(est["high"], est["value"]))
    if names:
        out["metrics"] = plots.intervals(
            names,
            points,
            lows,
            highs,
            title="metrics with 95 % bootstrap CI",
            threshold=result.criteria.get("threshold") if len(headline_metrics(result)) == 1 else None,
        )
    cls = (result.classification or {}).get("tuned")
    if cls and len(cls["confusion_labels"]) <= 40:
        out["confusion"] = plots.heatmap(cls["confusion"], cls["confusion_labels"], title="confusion matrix (fine-tuned)")
    if result.forgetting:
        rc = result.forgetting["relative_change"]
        out["forgetting"] = plots.bars(
            [f"{k} (+ = worse)" for k in rc],
            [100 * v for v in rc.values()],
            title=f"relative degradation vs base, % (budget {100 * result.forgetting['budget']:.0f} %)",
            xlabel="%",
        )
    return out


def training_plots(training: dict[str, Any]) -> dict[str, str]:
    """The loss curves and, with ``train.select_by: metric``, the validation metric curve, marked at the step each criterion picks."""
    history = training.get("history") or []
    selection = training.get("selection") or {}
    marks = {
        f"chosen by {k}{' (used)' if k == selection.get('select_by') else ''}": s
        for k, s in (selection.get("chosen_by") or {}).items()
        if s is not None
    }
    out: dict[str, str] = {}
    for name, keys, title in (
        ("loss", ("train_loss", "val_loss"), "training and validation loss"),
        ("val_metric", ("val_metric",), f"validation {selection.get('metric', 'metric')} ({len(selection.get('rows') or [])} rows)"),
    ):
        series: dict[str, tuple[Sequence[float], Sequence[float]]] = {}
        for key in keys:
            pts = [(h["step"], h[key]) for h in history if h.get(key) is not None and h.get("step") is not None]
            if pts:
                series[key.replace("_", " ")] = ([p[0] for p in pts], [p[1] for p in pts])
        if series:
            out[name] = plots.lines(series, title=title, xlabel="step", ylabel=name.replace("val_", ""), marks=marks or None)
    return out


def headline_metrics(result: Any) -> list[str]:
    wanted = [result.metric] + [m for m in HEADLINE.get(result.task, []) if m != result.metric]
    return [m for m in wanted if m in result.metrics.get("tuned", {})]


def write_eval_report(result: Any, out_dir: str | Path) -> tuple[Path, Path]:
    """Write report.json and report.html into ``out_dir``; sets the paths on ``result``."""
    out_dir = Path(out_dir)
    html_path, json_path = out_dir / "report.html", out_dir / "report.json"
    result.report_html, result.report_json = str(html_path), str(json_path)
    write_atomic(json_path, dumps(result.to_dict()))
    findings = sorted(sorted(result.findings, key=lambda f: f.code), key=lambda f: f.severity, reverse=True)
    beaten = {f.details.get("baseline"): f.details.get("passed") for f in result.findings if f.code == "EVL050"}
    write_report(
        html_path,
        "eval.html",
        r=result,
        findings=findings,
        plots=build_plots(result),
        beaten=beaten,
        headline=headline_metrics(result),
        blocking=[f for f in findings if f.severity == Severity.ERROR],
    )
    return html_path, json_path
