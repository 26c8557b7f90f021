"""report.html for a sweep: Optuna's own plotly figures, embedded offline, and the trials table.

plotly.js is inlined once (no CDN: the report opens on an air-gapped machine); every string
from the study (parameters, reasons) goes through the template's autoescaping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def figures(study: Any) -> dict[str, str]:
    """name -> HTML div; a figure Optuna cannot draw yet (too few trials) is left out, with why."""
    import optuna
    from optuna import visualization as vis

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    wanted = [
        ("Optimization history", lambda: vis.plot_optimization_history(study)),
        ("Parallel coordinates", lambda: vis.plot_parallel_coordinate(study)),
        ("Intermediate values (pruning)", lambda: vis.plot_intermediate_values(study)),
    ]
    if len(done) >= 2:
        wanted.append(("Parameter importances (fANOVA)", lambda: vis.plot_param_importances(study)))
    out: dict[str, str] = {}
    first = True
    for title, make in wanted:
        try:
            fig = make()
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            out[title] = f"<p class=muted>not drawn: {_escape(str(exc))}</p>"
            continue
        fig.update_layout(height=380, margin={"l": 50, "r": 20, "t": 40, "b": 40})
        out[title] = fig.to_html(full_html=False, include_plotlyjs="inline" if first else False, config={"displaylogo": False})
        first = False
    if len(done) < 2:
        out["Parameter importances (fANOVA)"] = "<p class=muted>needs at least two completed trials</p>"
    return out


def _escape(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


def write_report(path: str | Path, result: Any, study: Any) -> Path:
    from markupsafe import Markup

    from tunerail.report.render import write_report as render

    figs = {k: Markup(v) for k, v in figures(study).items()}  # plotly's own HTML; our strings are escaped above
    return render(path, "sweep.html", result=result, figures=figs)
