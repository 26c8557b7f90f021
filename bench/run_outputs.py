"""The answers a finished ``tunerail run`` judged, read back for the demo benches (bench/demo_*.py).

The eval writes every model's answer per frozen test row to ``eval/review_items.jsonl`` (the blind
review's input); reading them there keeps a bench's figures those of the judged answers.
"""

from __future__ import annotations

import json
from pathlib import Path


def eval_answers(run: Path) -> dict[str, list[str]]:
    """``{model name: [answer per test row]}`` (``base``, ``base_few_shot``, ``tuned``...), or {} before the eval ran."""
    path = run / "eval" / "review_items.jsonl"
    if not path.exists():
        return {}
    out: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        for name, text in json.loads(line)["outputs"].items():
            out.setdefault(name, []).append(text)
    return out
