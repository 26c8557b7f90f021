"""Self-contained HTML reports: data (a JSON-able dict) rendered by Jinja2 with autoescape on.

Every string that came from data or a model is escaped by the template engine; embedded JSON
goes through ``json_for_html`` so a ``</script>`` inside the data cannot end the script tag.
Plots are inline SVG (matplotlib), so a report is one file that fetches nothing.
"""

from tunerail.report.render import json_for_html, render_html, write_report

__all__ = ["json_for_html", "render_html", "write_report"]
