"""`tunerail sweep`: hyperparameter search with Optuna inside ``budget.search_share`` of the budget.

``recipe.py`` runs the study (trials are real training runs through the train recipe),
``space.py`` holds the search space, ``share.py`` the budget share, ``storage.py`` the Optuna
storage (SQLite or PostgreSQL, with heartbeats), ``report.py`` the HTML report.
"""

from tunerail._callable import make_callable
from tunerail.sweep.recipe import StudyTarget, SweepResult, sweep

__all__ = ["StudyTarget", "SweepResult", "sweep"]

make_callable(__name__, sweep)
