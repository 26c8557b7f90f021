"""tunerail: fine-tune LLMs on rails.

Every workflow step is a function that returns typed results; the CLI only prints them.
Heavy libraries (torch, transformers) load inside the steps that need them, so
``import tunerail`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# Public API, resolved lazily so that `import tunerail` never imports torch.
_LAZY = {
    "load_config": "tunerail.config",
    "TunerailConfig": "tunerail.config",
    "Finding": "tunerail.findings",
    "Severity": "tunerail.findings",
    "Record": "tunerail.data.records",
    "load_records": "tunerail.data.loaders",
    "doctor": "tunerail.doctor",
    "split": "tunerail.split",
    "leakage": "tunerail.split.leakage",
    "select": "tunerail.select",
    "Store": "tunerail.store",
    "train": "tunerail.train",
    "sweep": "tunerail.sweep",
    "evaluate": "tunerail.eval",
    "run": "tunerail.pipeline",
    "export_model": "tunerail.export",
    "serve": "tunerail.serve",
    "monitor": "tunerail.monitor",
    "review_results": "tunerail.review.session",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tunerail' has no attribute {name!r}")
    return getattr(import_module(module), name)


__all__ = [*sorted(_LAZY), "__version__"]  # noqa: PLE0604 - derived from the lazy table, so it cannot drift
