"""Refuse evaluation sets too small to measure anything: each guard returns problems, not booleans."""

from __future__ import annotations

import math

from tunerail.errors import Problem
from tunerail.stats import planning_proportion, rows_needed, wilson_half_width

MIN_SHARE = 0.10
# Whole groups and per-class rounding cannot hit a share exactly: a configured 0.10 that lands
# on 9.8 % is accepted; a configured share below 0.10 is always refused.
SLACK = 0.005


def size_problems(
    sizes: dict[str, int],
    total: int,
    margin: float,
    metric: str | None,
    expected: float | None = None,
    shares: dict[str, float] | None = None,
) -> list[Problem]:
    """Problems with the validation and test sizes (empty list: big enough).

    Both evaluation sets must hold at least 10 % of the rows; the test set (the verdict) must also
    be large enough that the main metric's 95 % CI half-width is narrower than ``margin``.
    ``expected`` (the success threshold, when set) tightens the variance bound for proportions.
    """
    p = planning_proportion(expected)
    problems: list[Problem] = []
    for name in ("validation", "test"):
        n = sizes.get(name, 0)
        share = n / total if total else 0.0
        configured = (shares or {}).get(name, MIN_SHARE)
        if configured < MIN_SHARE - 1e-9 or share < MIN_SHARE - SLACK:
            need = math.ceil(MIN_SHARE * total)
            problems.append(
                Problem(
                    f"the {name} set has {n} rows ({share:.1%} of {total}); at least {MIN_SHARE:.0%} ({need} rows) is required",
                    field=f"split.{name}",
                    fix=f"set split.{name} to 0.1 or more (or pass --force to accept it, recorded in split.json)",
                )
            )
    n_test = sizes.get("test", 0)
    half = wilson_half_width(n_test, p)
    if half >= margin:
        need = rows_needed(margin, p)
        share_needed = need / total if total else float("inf")
        problems.append(
            Problem(
                f"the test set has {n_test} rows: the 95 % CI of {metric} is +/-{half:.3f}, not narrower than "
                f"criteria.margin = {margin:.3f}; {need} test rows are needed",
                field="split.test",
                fix=(
                    f"raise split.test to {math.ceil(share_needed * 100) / 100:.2f} ({need} of {total} rows)"
                    if share_needed < 0.5
                    else f"collect more data ({need} test rows), or widen criteria.margin"
                )
                + " (or pass --force to accept it, recorded in split.json)",
            )
        )
    return problems
