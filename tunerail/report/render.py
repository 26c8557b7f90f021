"""Render report templates shipped inside the package."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from markupsafe import Markup

from tunerail.io import write_atomic


def json_for_html(value: Any) -> Markup:
    """JSON safe to embed in <script>: ``<``, ``>`` and ``&`` become unicode escapes; strings redacted."""
    from tunerail.report.redact import redact

    text = json.dumps(redact(json.loads(json.dumps(value, default=str))), sort_keys=True, ensure_ascii=False, default=str)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def environment():
    """The report Jinja2 environment (autoescape on, StrictUndefined, redacting filters); the review app renders with it too."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    from tunerail.report.redact import redact

    env = Environment(
        loader=PackageLoader("tunerail", "report/templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        finalize=redact,  # every {{ value }} of every report loses secrets and personal data
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tojson_safe"] = json_for_html
    env.filters["svg"] = lambda s: Markup(s)  # only for SVG we generated ourselves (see plots.py)
    env.filters["pct"] = lambda x, d=1: "–" if x is None else f"{100 * float(x):.{d}f} %"
    env.filters["num"] = lambda x, d=3: "–" if x is None else (f"{x:,}" if isinstance(x, int) else f"{float(x):.{d}f}")
    return env


def render_html(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with ``context``; data strings are auto-escaped."""
    return environment().get_template(template).render(**context)


def write_report(path: str | Path, template: str, **context: Any) -> Path:
    """Render and write atomically."""
    return write_atomic(path, render_html(template, **context))
