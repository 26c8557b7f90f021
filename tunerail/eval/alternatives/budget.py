"""The time the local alternatives may spend: ``SHARE`` of the eval step, and the finding when they spend more.

The eval step's time is known only after its LLMs ran, so the budget the alternatives get before
them is estimated from the test rows at the demo's measured rate: 313 s for 258 test rows on a quiet
2-core CPU (README: SmolLM2-135M base and tuned answers, forgetting suite), 1.2 s per row, so the
WNUT-17 demo's alternatives get 31 s together, 28 s after a 10 % headroom. A budgeted alternative
(spaCy NER) stops within what the others left. After the eval, :func:`slow_findings` checks the measured share and names the
alternatives that went over (EVL053): cheap alternatives must stay cheap next to what they are
compared with, or nobody runs them.

The budget is counted in CPU seconds of this process (``time.process_time``), not wall seconds: on
a machine busy with other work (2 cores at load 20, where a spaCy epoch took 25 s of wall time
instead of ~3) a wall-clock budget cut spaCy after part of one epoch (field F1 0.01 instead of 0.45),
while the eval step it is a share of slows down as much. The EVL053 check compares wall times, both
slowed alike.
"""

from __future__ import annotations

from typing import Sequence

from tunerail.eval.alternatives.base import Fitted
from tunerail.findings import Finding, Severity

SHARE = 0.10  # of the eval step, for all local alternatives together (issue 21)
EVAL_SECONDS_PER_ROW = 313 / 258  # the WNUT-17 demo's eval step per test row, quiet 2-core CPU
# Kept free of planned work: imports, cache reads and the last predictions fall outside a fit's own
# clock (on WNUT-17 the fits used 32.1 CPU s of a 31.3 s budget without it), like the sweep's headroom.
HEADROOM = 0.1
MIN_BUDGET_S = 10.0  # below this a spaCy pipeline does not finish one pass over a few hundred rows


def local_budget(test_rows: int, share: float | None = SHARE) -> float | None:
    """CPU seconds all local alternatives may spend together on ``test_rows`` test rows (at least ``MIN_BUDGET_S``).

    ``share`` is ``eval.alternatives_budget_share``; None means no cap.

    Examples
    --------
    >>> round(local_budget(258), 1)
    28.2
    >>> local_budget(20)
    10.0
    >>> local_budget(258, None) is None
    True
    """
    if share is None:
        return None
    return max(share * (1 - HEADROOM) * EVAL_SECONDS_PER_ROW * test_rows, MIN_BUDGET_S)


def slow_findings(fitted: Sequence[Fitted], eval_seconds: float, share: float | None = SHARE) -> list[Finding]:
    """Warning EVL053 when the local alternatives fitted in this eval took more than ``share`` of its seconds (None: no cap).

    Hosted alternatives (network time) and cached fits (0 s this time) do not count. The finding
    names every local alternative that ran, slowest first, with its seconds.
    """
    if share is None:  # eval.alternatives_budget_share: null, no cap to report against
        return []
    local = sorted((f for f in fitted if f.kind == "cheap" and f.seconds > 0), key=lambda f: -f.seconds)
    spent = sum(f.seconds for f in local)
    if not local or eval_seconds <= 0 or spent <= share * eval_seconds:
        return []
    named = ", ".join(f"{f.name} {f.seconds:.1f} s" for f in local)
    return [
        Finding(
            check="baseline.slow",
            code="EVL053",
            severity=Severity.WARNING,
            message=(
                f"the local alternatives took {spent:.1f} s, {spent / eval_seconds:.0%} of the eval step's {eval_seconds:.1f} s "
                f"(budget {share:.0%}): {named}"
            ),
            fix=(
                f"the slowest is {local[0].name} ({local[0].seconds:.1f} s): its fit is cached by data hash, so a re-run is free; "
                "on a busy machine expect this, else report it (bench/baselines.py measures each fit)"
            ),
            details={"alternative": local[0].name, "seconds": round(local[0].seconds, 2), "spent": round(spent, 2), "share": share},
        )
    ]
