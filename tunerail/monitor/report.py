"""monitor.json rendered as one self-contained, escaped HTML page (drift statistics over windows)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence


def _plots(result: Any) -> dict[str, str]:
    from tunerail.monitor.drift import TESTS
    from tunerail.report.plots import lines

    windows = result.windows
    if not windows:
        return {}
    xs = [w["index"] for w in windows]
    series: dict[str, tuple[Sequence[float], Sequence[float]]] = {}
    for name in TESTS:
        pts = [(w["index"], -math.log10(max(t["p_value"], 1e-300))) for w in windows for t in w["tests"] if t["name"] == name]
        if pts:
            series[name] = ([p[0] for p in pts], [p[1] for p in pts])
    level = result.settings.get("level_per_test") or result.settings["alpha"] / max(result.settings["tests_in_family"], 1)
    series["corrected level"] = (xs, [-math.log10(level)] * len(xs))
    out = {"p_values": lines(series, title="-log10 p per test (above the dashed level = significant)", xlabel="window", ylabel="-log10 p")}
    rates: dict[str, tuple[Sequence[float], Sequence[float]]] = {
        k: (xs, [w["rates"].get(k, float("nan")) for w in windows])
        for k in ("out_of_scope_share", "no_label_rate", "refusal_rate", "empty_answer_rate")
        if any(k in w["rates"] for w in windows)
    }
    out["rates"] = lines(rates, title="shares per window", xlabel="window", ylabel="share")
    return out


def write_monitor_report(path: str | Path, result: Any) -> Path:
    from tunerail.report.render import write_report

    payload = result.to_dict()
    return write_report(path, "monitor.html", result=payload, plots=_plots(result), data=payload)
