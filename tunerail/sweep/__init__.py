"""`tunerail sweep`: hyperparameter search with Optuna inside ``budget.search_share`` of the budget.

``recipe.py`` runs the study (trials are real training runs through the train recipe),
``space.py`` holds the search space, ``share.py`` the budget share, ``storage.py`` the Optuna
storage (SQLite or PostgreSQL, with heartbeats), ``report.py`` the HTML report.
"""

from __future__ import annotations

from typing import Any

__all__ = ["sweep", "SweepResult"]


def __getattr__(name: str) -> Any:
    if name in ("sweep", "SweepResult"):
        from tunerail.sweep import recipe

        return getattr(recipe, name)
    raise AttributeError(f"module 'tunerail.sweep' has no attribute {name!r}")


from tunerail._callable import make_callable  # noqa: E402

make_callable(__name__, "tunerail.sweep.recipe:sweep")
