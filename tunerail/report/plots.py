"""Inline SVG plots for reports (matplotlib, Agg backend, no external assets).

Each function returns an SVG string. Labels that came from data are escaped by matplotlib's
SVG writer, so the SVG is safe to insert unescaped into our own templates.
"""

from __future__ import annotations

import io
from typing import Mapping, Sequence

from tunerail.report.redact import redact  # tick labels are data (class names): masked like any report text


def _figure(width: float = 6.0, height: float = 3.0):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "tunerail"  # deterministic ids in the SVG
    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.tight_layout()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.find("<svg") :]


def histogram(
    values: Sequence[float], *, title: str, xlabel: str, bins: int = 40, vline: float | None = None, vline_label: str = ""
) -> str:
    fig, ax = _figure()
    ax.hist(list(values), bins=bins, color="#4c72b0")
    if vline is not None:
        ax.axvline(vline, color="#c44e52", linestyle="--", label=vline_label)
        if vline_label:
            ax.legend(frameon=False)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    return _svg(fig)


def bars(
    labels: Sequence[str], values: Sequence[float], *, title: str, xlabel: str = "", horizontal: bool = True, max_bars: int = 40
) -> str:
    labels, values = redact([str(label) for label in labels][:max_bars]), list(values)[:max_bars]
    height = max(2.5, 0.22 * len(labels) + 1) if horizontal else 3.0
    fig, ax = _figure(6.5, height)
    if horizontal:
        ax.barh(range(len(values)), values, color="#4c72b0")
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
    else:
        ax.bar(range(len(values)), values, color="#4c72b0")
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel(xlabel)
    ax.set_title(title)
    return _svg(fig)


def lines(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    marks: dict[str, float] | None = None,
) -> str:
    fig, ax = _figure()
    for name, (xs, ys) in series.items():
        ax.plot(list(xs), list(ys), marker="o" if len(xs) < 30 else None, markersize=3, label=name)
    for name, x in (marks or {}).items():
        ax.axvline(x, color="#999999", linestyle=":", label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False, fontsize=8)
    return _svg(fig)


def heatmap(matrix: Sequence[Sequence[float]], labels: Sequence[str], *, title: str) -> str:
    import numpy as np

    data = np.asarray(matrix, dtype=float)
    labels = redact([str(label) for label in labels])
    size = max(4.0, 0.25 * len(labels) + 2)
    fig, ax = _figure(size, size)
    ax.imshow(data, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _svg(fig)


def intervals(
    names: Sequence[str],
    points: Sequence[float],
    lows: Sequence[float],
    highs: Sequence[float],
    *,
    title: str,
    threshold: float | None = None,
) -> str:
    names = redact([str(name) for name in names])
    fig, ax = _figure(6, max(2.0, 0.45 * len(names) + 1))
    ys = list(range(len(names)))
    ax.errorbar(
        points,
        ys,
        xerr=[[max(0.0, p - lo) for p, lo in zip(points, lows)], [max(0.0, h - p) for p, h in zip(points, highs)]],
        fmt="o",
        capsize=4,
        color="#4c72b0",
    )
    ax.set_yticks(ys, names)
    if threshold is not None:
        ax.axvline(threshold, color="#c44e52", linestyle="--", label="threshold")
        ax.legend(frameon=False)
    ax.set_title(title)
    return _svg(fig)


def scatter_ci(
    xs: Sequence[float],
    estimates: Sequence[Mapping[str, float]],
    labels: Sequence[str],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    highlight: str | None = None,
) -> str:
    """Points with vertical CI bars, each labelled (select: task score against model size); ``estimates``: Estimate dicts."""
    fig, ax = _figure(6.5, 3.6)
    for x, est, name in zip(xs, estimates, labels):
        y, lo, hi = est["value"], est["low"], est["high"]
        colour = "#c44e52" if name == highlight else "#4c72b0"
        ax.errorbar([x], [y], yerr=[[y - lo], [hi - y]], fmt="o", capsize=4, color=colour)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=7)
    if xs and max(xs) / max(min(xs), 1e-9) > 20:
        ax.set_xscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _svg(fig)
