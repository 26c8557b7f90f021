"""Qualitative review material: what a person should read before trusting a number.

- ``side_by_side``: a seeded sample of (input, reference, base output, tuned output).
- ``worst_cases``: the rows where the tuned model scores lowest (and regressions vs base first).
- ``slices``: the main per-example score by class and by input-length bucket.
- ``export_for_review`` / ``import_ratings``: a CSV/JSONL with a blank ``rating`` column for human
  raters, and reading it back (``tunerail review import``).
"""

from tunerail.review.material import (
    ITEMS_FILE,
    ReviewRow,
    export_for_review,
    import_ratings,
    key_path,
    side_by_side,
    slices,
    worst_cases,
    write_items,
)

__all__ = [
    "ITEMS_FILE",
    "ReviewRow",
    "export_for_review",
    "import_ratings",
    "key_path",
    "side_by_side",
    "slices",
    "worst_cases",
    "write_items",
]
