"""Leakage-safe splits: grouped, stratified, seeded, with a frozen test set; and leakage checks.

``split`` (``recipe.py``) runs before any preprocessing fit or augmentation; ``leakage`` checks any
sets against each other; ``verify_frozen_split`` is called by every step that reads the test set.
"""

from tunerail._callable import make_callable
from tunerail.split.frozen import verify_frozen_split
from tunerail.split.recipe import SplitResult, split

__all__ = ["SplitResult", "split", "verify_frozen_split"]

make_callable(__name__, split)
