"""Quiet terminal by default: third-party progress bars, INFO lines and deprecation warnings stay off.

Every command calls :func:`configure` once (through ``tunerail.cli._common.guarded``), so the
rule lives here and nowhere else. What it silences, and how:

- progress bars of transformers ("Loading weights"), huggingface_hub, datasets and any other
  ``tqdm`` user (GGUF dequantisation included): environment switches read at import time, plus
  transformers' own switch when it is already imported;
- log lines below WARNING (ERROR for transformers/peft) from the libraries' loggers: MLflow's INFO
  lines about the tracking store, alembic migrations, HTTP clients;
- ``FutureWarning``/``DeprecationWarning`` everywhere and every warning raised inside a
  third-party package (they address the library's developers, not the user).

``configure(verbose=True)`` (``--verbose`` on ``run`` and ``train``) changes nothing, so all of it
reaches the terminal. tunerail's own output (rich progress, findings, summaries) is never affected.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

# Environment switches the libraries read when they are imported (before any torch import here).
QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "DATASETS_VERBOSITY": "error",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
}

# Logger name -> least level shown.
QUIET_LOGGERS = {
    "transformers": logging.ERROR,
    "peft": logging.ERROR,
    "accelerate": logging.WARNING,
    "mlflow": logging.WARNING,
    "alembic": logging.WARNING,
    "sqlalchemy": logging.WARNING,
    "huggingface_hub": logging.WARNING,
    "datasets": logging.WARNING,
    "sentence_transformers": logging.WARNING,
    "gguf": logging.WARNING,
    "torch": logging.WARNING,
    "urllib3": logging.WARNING,
    "httpx": logging.WARNING,
    "filelock": logging.WARNING,
    "optuna": logging.WARNING,
}

THIRD_PARTY = (
    r"(transformers|peft|accelerate|mlflow|alembic|sqlalchemy|huggingface_hub|datasets|sentence_transformers|gguf|torch|optuna)(\..*)?$"
)

_configured: bool | None = None


def configure(verbose: bool = False) -> None:
    """Silence third-party noise unless ``verbose``; safe to call more than once."""
    global _configured
    if verbose:
        _configured = False
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
    warnings.filterwarnings("ignore", module=THIRD_PARTY)
    if "transformers" in sys.modules:  # imported before us (Python API): switch its bars off directly
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
        except ImportError:  # pragma: no cover - transformers without these helpers
            pass
    _configured = True


def is_quiet() -> bool:
    """True once :func:`configure` silenced the libraries in this process."""
    return bool(_configured)
