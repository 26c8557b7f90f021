"""Preference pairs from the blind review's votes: what people preferred becomes training signal.

Each judged unit is one prompt (a review item) and two systems' answers. Per unit:

- skipped votes do not count; ties carry no preference and are dropped (counted as ``ties``);
- annotators who disagree (one prefers the first system, another the second) make the unit
  *contradicted* (counted); the strict majority wins, and a split with no majority is dropped
  (``contradicted_dropped``): a coin flip is not a preference;
- the pair keeps the ids of every vote on its unit (``annotator/unit``) as its lineage.

Pure over ``ReviewStore.votes()`` and the review material; :func:`review_pairs` reads them from a
review folder.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from tunerail.data.preference import PairSet, PreferencePair
from tunerail.errors import Problem, TunerailError
from tunerail.io import hash_file
from tunerail.review.store import ReviewStore


def vote_id(vote: dict[str, Any]) -> str:
    """A vote's key in the review store (its primary key): ``annotator/unit``."""
    return f"{vote['annotator']}/{vote['unit']}"


def pairs_from_votes(items: Sequence[dict[str, Any]], votes: Sequence[dict[str, Any]]) -> tuple[list[PreferencePair], dict[str, int]]:
    """Pairs (prompt, preferred answer, other answer) and the counts of what was dropped and why.

    ``items`` is the review material (``input`` and ``outputs`` by system), ``votes`` the store's
    votes joined with their units (``first``, ``second``, ``item``, ``preference``, ``skip_reason``).

    >>> items = [{"input": "q", "outputs": {"base": "a", "tuned": "b"}}]
    >>> v = {"unit": "u1", "item": 0, "first": "base", "second": "tuned", "skip_reason": None}
    >>> pairs, counts = pairs_from_votes(items, [{**v, "annotator": "ann", "preference": "tuned"}])
    >>> (pairs[0].chosen, pairs[0].rejected, counts["pairs"])
    ('b', 'a', 1)
    """
    by_unit: dict[str, list[dict[str, Any]]] = defaultdict(list)
    counts = {"votes": len(votes), "skipped": 0, "ties": 0, "units": 0, "contradicted": 0, "contradicted_dropped": 0, "pairs": 0}
    for v in votes:
        if v["skip_reason"] is not None or v["preference"] is None:
            counts["skipped"] += 1
        elif v["preference"] == "tie":
            counts["ties"] += 1
        else:
            by_unit[v["unit"]].append(v)
    pairs = []
    for unit in sorted(by_unit, key=lambda u: (by_unit[u][0]["item"], u)):
        vs = by_unit[unit]
        counts["units"] += 1
        first, second = vs[0]["first"], vs[0]["second"]
        wins = {first: sum(v["preference"] == first for v in vs), second: sum(v["preference"] == second for v in vs)}
        if wins[first] and wins[second]:
            counts["contradicted"] += 1
            if wins[first] == wins[second]:
                counts["contradicted_dropped"] += 1
                continue
        winner, loser = (first, second) if wins[first] > wins[second] else (second, first)
        item = items[vs[0]["item"]]
        ids = tuple(sorted(vote_id(v) for v in vs))
        pairs.append(PreferencePair(item["input"], item["outputs"][winner], item["outputs"][loser], votes=ids))
    counts["pairs"] = len(pairs)
    return pairs, counts


def review_pairs(run_dir: str | Path) -> PairSet:
    """The pairs of the review held in ``run_dir`` (an eval folder, or a run folder with ``eval/``).

    Raises TunerailError (exit 2) when the folder has no review material or no review votes.
    """
    from tunerail.review.session import load_items, material_path

    material = material_path(run_dir)
    store = ReviewStore(material.parent / "review" / "review.sqlite")
    if not store.exists():
        raise TunerailError(
            Problem(
                "no review session in this folder",
                file=str(material.parent),
                fix="collect votes first with `tunerail review serve` on this folder",
            )
        )
    if store.meta()["material_hash"] != hash_file(material):
        raise TunerailError(
            Problem(
                "the review material changed since the votes were cast", file=str(store.path), fix="re-run the review on the new material"
            )
        )
    pairs, counts = pairs_from_votes(load_items(material), store.votes())
    lineage = {
        "review_store": str(store.path),
        "material_sha256": hash_file(material),
        "votes": sorted({v for p in pairs for v in p.votes}),
    }
    return PairSet(pairs, str(store.path), counts=counts, lineage=lineage)
