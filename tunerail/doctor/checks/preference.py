"""Preference data (prompt, chosen, rejected): pairs that teach nothing, contradict, or leak.

Pure functions over ``PreferencePair`` lists (``tunerail.data.preference``), used by the DPO recipe
before training; the registered wrappers run them in ``tunerail doctor`` on a file whose rows carry a
``rejected`` column (a prompt/chosen/rejected file loads as prompt/completion with ``rejected`` kept).
Every finding lists the affected pairs (``details["pairs"]``, positions) and their rows when read from
a file; ``bad_pairs`` collects the positions a trainer must drop.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Sequence

from tunerail.data.preference import PreferencePair, pair_from_record, pair_key
from tunerail.data.records import RowRef, normalize_text
from tunerail.doctor.checks._common import excerpt, found
from tunerail.doctor.context import CheckContext
from tunerail.doctor.registry import register
from tunerail.findings import Finding, Severity


def _finding(
    code: str, name: str, severity: Severity, message: str, fix: str, pairs: Sequence[PreferencePair], positions: list[int]
) -> Finding:
    rows = sorted(r for r in (pairs[i].ref for i in positions) if r is not None)
    return Finding(name, severity, message, fix, rows=rows, code=code, details={"pairs": positions})


def empty_pairs(pairs: Sequence[PreferencePair]) -> list[Finding]:
    """DOC070: a pair whose chosen or rejected answer is blank: the loss would push toward or away from nothing."""
    bad = [i for i, p in enumerate(pairs) if not p.chosen.strip() or not p.rejected.strip() or not p.prompt.strip()]
    if not bad:
        return []
    return [
        _finding(
            "DOC070",
            "preference.empty",
            Severity.ERROR,
            f"{len(bad)} pair(s) have an empty prompt, chosen or rejected answer (first: pair {bad[0]})",
            "fill in both answers or drop the pair (the DPO recipe drops it and records it)",
            pairs,
            bad,
        )
    ]


def identical_pairs(pairs: Sequence[PreferencePair]) -> list[Finding]:
    """DOC071: chosen equals rejected after normalisation: the preference margin is zero by construction."""
    bad = [i for i, p in enumerate(pairs) if p.chosen.strip() and normalize_text(p.chosen) == normalize_text(p.rejected)]
    if not bad:
        return []
    first = pairs[bad[0]]
    return [
        _finding(
            "DOC071",
            "preference.identical",
            Severity.ERROR,
            f'{len(bad)} pair(s) prefer an answer over the same answer (first: "{excerpt(first.chosen, 40)}")',
            "drop them: a pair must hold two different answers (the DPO recipe drops them)",
            pairs,
            bad,
        )
    ]


def contradicting_pairs(pairs: Sequence[PreferencePair]) -> list[Finding]:
    """DOC072: the same prompt and answers judged both ways (A over B in one row, B over A in another).

    Anti-pattern: votes merged from annotators who disagree; the two rows cancel in the loss and
    the model learns noise. Fix: keep the majority or drop both (the DPO recipe drops both).
    """
    seen: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        seen[pair_key(p.prompt, p.chosen, p.rejected)].append(i)
    out = []
    for (prompt, a, b), members in seen.items():
        if a < b and (prompt, b, a) in seen:
            both = sorted(members + seen[(prompt, b, a)])
            out.append(
                _finding(
                    "DOC072",
                    "preference.contradiction",
                    Severity.ERROR,
                    f'{len(both)} pairs judge the same two answers both ways for "{excerpt(pairs[both[0]].prompt, 40)}"',
                    "resolve by majority or drop the pairs (the DPO recipe drops them)",
                    pairs,
                    both,
                )
            )
    return out


def vote_contradictions(counts: dict[str, int]) -> list[Finding]:
    """DOC072 for review votes: units where annotators preferred opposite answers (majority kept, splits dropped)."""
    n = counts.get("contradicted", 0)
    if not n:
        return []
    dropped = counts.get("contradicted_dropped", 0)
    return [
        Finding(
            "preference.contradiction",
            Severity.WARNING,
            f"{n} reviewed item(s) got opposite votes from different annotators; the majority was kept, {dropped} even split(s) dropped",
            "read the disputed items (`tunerail review results`) and sharpen the rubric if the split is large",
            code="DOC072",
            details={"contradicted": n, "contradicted_dropped": dropped},
        )
    ]


def test_leaks(pairs: Sequence[PreferencePair], test_prompts: Iterable[str]) -> list[Finding]:
    """DOC073: a pair's prompt is a frozen test prompt: tuning on it would inflate the eval after DPO.

    Votes from a review of the frozen test set land here: review a pool outside the test set
    (e.g. `tunerail eval --test pool.jsonl --out pool-eval`, then `tunerail review serve pool-eval`).
    """
    frozen = {normalize_text(t) for t in test_prompts}
    bad = [i for i, p in enumerate(pairs) if normalize_text(p.prompt) in frozen]
    if not bad:
        return []
    return [
        _finding(
            "DOC073",
            "preference.test_leak",
            Severity.ERROR,
            f"{len(bad)} of {len(pairs)} pair(s) use a prompt of the frozen test set (first: "
            f'"{excerpt(pairs[bad[0]].prompt, 40)}"); the eval after tuning would score seen prompts',
            "collect preferences on prompts outside the test set (the DPO recipe drops these pairs)",
            pairs,
            bad,
        )
    ]


def audit_pairs(pairs: Sequence[PreferencePair], test_prompts: Iterable[str] = ()) -> list[Finding]:
    """Every preference check over ``pairs`` (the leak check only when test prompts are given)."""
    return [*empty_pairs(pairs), *identical_pairs(pairs), *contradicting_pairs(pairs), *test_leaks(pairs, test_prompts)]


def bad_pairs(findings: Iterable[Finding]) -> dict[int, str]:
    """Positions of the pairs an error finding names -> the first finding's dotted name (the drop reason)."""
    out: dict[int, str] = {}
    for f in findings:
        if f.severity == Severity.ERROR:
            for i in f.details.get("pairs", []):
                out.setdefault(i, f.check)
    return out


# --- the same checks inside `tunerail doctor` ---------------------------------------------------


def _ctx_pairs(ctx: CheckContext) -> tuple[list[PreferencePair], list[RowRef]]:
    """The context's rows as pairs when it is a preference file (some row has ``rejected``), and the rows missing it."""
    if not any("rejected" in r.fields for r in ctx.records):
        return [], []
    pairs, missing = [], []
    for r in ctx.records:
        item = pair_from_record(r)
        if isinstance(item, PreferencePair):
            pairs.append(item)
        else:
            missing.append(r.ref)
    return pairs, missing


@register("DOC070", "preference.empty")
def empty_preference(ctx: CheckContext) -> list[Finding]:
    """Preference rows with a blank or missing answer."""
    pairs, missing = _ctx_pairs(ctx)
    out = empty_pairs(pairs)
    if missing:
        out.append(found(Severity.ERROR, f"{len(missing)} preference row(s) have no rejected answer", "fill in rejected", rows=missing))
    return out


@register("DOC071", "preference.identical")
def identical_preference(ctx: CheckContext) -> list[Finding]:
    """Preference rows whose chosen and rejected answers are the same."""
    return identical_pairs(_ctx_pairs(ctx)[0])


@register("DOC072", "preference.contradiction")
def contradicting_preference(ctx: CheckContext) -> list[Finding]:
    """Preference rows judging the same two answers both ways."""
    return contradicting_pairs(_ctx_pairs(ctx)[0])


@register("DOC073", "preference.test_leak")
def leaking_preference(ctx: CheckContext) -> list[Finding]:
    """Preference rows whose prompt is a frozen test prompt (``tunerail doctor --test``; skipped without it)."""
    return test_leaks(_ctx_pairs(ctx)[0], ctx.test_prompts or ())
