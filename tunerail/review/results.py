"""What the human review says: win rates, rubric means, agreement, and the most disputed items.

Pure functions over the stored votes (``ReviewStore.votes()``); nothing here knows about HTTP.
``existing_results`` reads back ``review/results.json`` for the eval, when it still matches the material.

- Win rate of each system in a pair: wins / (wins + losses), ties excluded and reported beside it,
  with the Wilson 95 % interval (``tunerail.stats``). Each non-skipped vote counts once.
- Rubric: mean score per question and system with a percentile-bootstrap 95 % CI.
- Agreement per question on the units rated by two or more annotators: Krippendorff's alpha
  (``krippendorff`` package; nominal for the preference, ordinal for rubric scales) beside the raw
  pairwise percentage agreement. Alpha is undefined with no unit rated twice, or when every rating
  has the same value (0/0); those cases come back as ``alpha: None`` with the reason, never a crash.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from itertools import combinations
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from tunerail import stats as S
from tunerail.io import hash_file
from tunerail.review.material import ITEMS_FILE

PREFERENCE_CODES = {"first": 0.0, "second": 1.0, "tie": 2.0}


def agreement(
    ratings: dict[Any, dict[str, float]], level: Literal["nominal", "ordinal"], domain: Sequence[float] | None = None
) -> dict[str, Any]:
    """Krippendorff's alpha and raw pairwise agreement; ``ratings``: unit -> annotator -> value.

    Returns ``{"alpha", "percent", "units", "pairs", "level", "undefined"}``; ``undefined`` names
    why alpha could not be computed (then ``alpha`` is None).

    >>> agreement({1: {"x": 1, "y": 1}, 2: {"x": 2, "y": 2}}, "nominal")["alpha"]
    1.0
    """
    pairable = {u: r for u, r in ratings.items() if len(r) >= 2}
    agree = total = 0
    for r in pairable.values():
        for a, b in combinations(r.values(), 2):
            agree += a == b
            total += 1
    out: dict[str, Any] = {
        "alpha": None,
        "percent": agree / total if total else None,
        "units": len(pairable),
        "pairs": total,
        "level": level,
        "undefined": None,
    }
    values = {v for r in pairable.values() for v in r.values()}
    if not pairable:
        out["undefined"] = "no item rated by two annotators yet (needs two annotators and review.overlap > 0)"
        return out
    if len(values) < 2:
        out["undefined"] = "every rating has the same value: alpha is 0/0 (agreement is trivially complete)"
        return out
    import krippendorff

    coders = sorted({a for r in pairable.values() for a in r})
    data = np.full((len(coders), len(pairable)), np.nan)
    for j, r in enumerate(pairable.values()):
        for coder, v in r.items():
            data[coders.index(coder), j] = v
    kwargs = {"value_domain": list(domain)} if domain is not None else {}
    value = float(krippendorff.alpha(reliability_data=data, level_of_measurement=level, **kwargs))
    if math.isnan(value):
        out["undefined"] = "alpha is not a number for these ratings"
    else:
        out["alpha"] = value
    return out


def summarize(
    votes: Sequence[dict[str, Any]],
    rubric: Sequence[Any],
    *,
    units_total: int,
    items: Sequence[dict[str, Any]] | None = None,
    progress: dict[str, Any] | None = None,
    resamples: int = 1000,
    top_disagreed: int = 10,
) -> dict[str, Any]:
    """Review results from stored votes (``ReviewStore.votes()``) and the rubric config.

    ``items`` (the review material) adds the input and the outputs to the most disagreed items.
    """
    cast = [v for v in votes if v["skip_reason"] is None]
    by_pair: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for v in cast:
        by_pair[(v["first"], v["second"])].append(v)
    pairs = []
    for (first, second), vs in by_pair.items():
        wins = {first: sum(v["preference"] == first for v in vs), second: sum(v["preference"] == second for v in vs)}
        ties = sum(v["preference"] == "tie" for v in vs)
        decided = wins[first] + wins[second]
        rates = {}
        for name in (first, second):
            lo, hi = S.wilson_interval(wins[name], decided)
            rates[name] = {"value": wins[name] / decided if decided else None, "low": lo, "high": hi, "n": decided}
        tie_lo, tie_hi = S.wilson_interval(ties, len(vs))
        pairs.append(
            {
                "first": first,
                "second": second,
                "votes": len(vs),
                "items": len({v["unit"] for v in vs}),
                "wins": wins,
                "ties": ties,
                "win_rate": rates,
                "tie_rate": {"value": ties / len(vs) if vs else None, "low": tie_lo, "high": tie_hi, "n": len(vs)},
            }
        )
    rubric_out = []
    for q in rubric:
        per_system: dict[str, list[float]] = defaultdict(list)
        for v in cast:
            for system, score in (v["rubric"].get(q.name) or {}).items():
                per_system[system].append(float(score))
        systems = {}
        for system, scores in sorted(per_system.items()):
            est = S.bootstrap_ci(scores, resamples=resamples)
            systems[system] = {"mean": est.value, "low": est.low, "high": est.high, "n": est.n}
        rubric_out.append({"name": q.name, "description": q.description, "scale": q.scale, "systems": systems})
    return {
        "units": units_total,
        "items_reviewed": len({v["unit"] for v in cast}),
        "votes": len(cast),
        "skipped": len(votes) - len(cast),
        "skip_reasons": sorted({v["skip_reason"] for v in votes if v["skip_reason"] is not None}),
        "annotators": progress or {},
        "pairs": pairs,
        "rubric": rubric_out,
        "agreement": agreement_by_question(cast, rubric),
        "disagreed": most_disagreed(cast, rubric, items, top_disagreed),
    }


def agreement_by_question(cast: Sequence[dict[str, Any]], rubric: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """The preference (coded by system, not by side: A differs per annotator) and each rubric question."""
    pref: dict[Any, dict[str, float]] = defaultdict(dict)
    scales: dict[str, dict[Any, dict[str, float]]] = {q.name: defaultdict(dict) for q in rubric}
    for v in cast:
        code = "tie" if v["preference"] == "tie" else ("first" if v["preference"] == v["first"] else "second")
        pref[v["unit"]][v["annotator"]] = PREFERENCE_CODES[code]
        for q in rubric:
            for system, score in (v["rubric"].get(q.name) or {}).items():
                scales[q.name][(v["unit"], system)][v["annotator"]] = float(score)
    out = {"preference": agreement(pref, "nominal")}
    for q in rubric:
        out[q.name] = agreement(scales[q.name], "ordinal", domain=range(1, q.scale + 1))
    return out


def most_disagreed(
    cast: Sequence[dict[str, Any]], rubric: Sequence[Any], items: Sequence[dict[str, Any]] | None, n: int
) -> list[dict[str, Any]]:
    """Units rated twice or more, most disputed first: split preference, then the widest rubric spread."""
    by_unit: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for v in cast:
        by_unit[v["unit"]].append(v)
    scored = []
    for unit, vs in by_unit.items():
        if len(vs) < 2:
            continue
        split = len({v["preference"] for v in vs}) - 1
        spread = 0.0
        for q in rubric:
            for system in (vs[0]["first"], vs[0]["second"]):
                got = [v["rubric"].get(q.name, {}).get(system) for v in vs]
                got = [g for g in got if g is not None]
                if len(got) >= 2:
                    spread = max(spread, (max(got) - min(got)) / (q.scale - 1))
        if split or spread:
            scored.append((split, spread, unit, vs))
    scored.sort(key=lambda t: (-t[0], -t[1], t[2]))
    out = []
    for split, spread, _unit, vs in scored[:n]:
        entry: dict[str, Any] = {
            "item": vs[0]["item"],
            "first": vs[0]["first"],
            "second": vs[0]["second"],
            "preference_split": bool(split),
            "rubric_spread": spread,
            "votes": [
                {"annotator": v["annotator"], "preference": v["preference"], "rubric": v["rubric"], "comment": v["comment"]} for v in vs
            ],
        }
        if items is not None:
            it = items[vs[0]["item"]]
            entry.update(
                {
                    "index": it["index"],
                    "line": it["line"],
                    "input": it["input"],
                    "reference": it["reference"],
                    "outputs": {s: it["outputs"][s] for s in (vs[0]["first"], vs[0]["second"])},
                }
            )
        out.append(entry)
    return out


def subject_win_rate(results: dict[str, Any], subject: str = "tuned") -> list[dict[str, Any]]:
    """The win rate of ``subject`` in every pair it is in (else the second system of each pair)."""
    out = []
    for p in results.get("pairs", []):
        name = subject if subject in (p["first"], p["second"]) else p["second"]
        other = p["first"] if name == p["second"] else p["second"]
        out.append({"system": name, "against": other, **p["win_rate"][name], "ties": p["ties"], "votes": p["votes"]})
    return out


def existing_results(eval_dir: str | Path) -> dict[str, Any] | None:
    """``review/results.json`` when it was computed on exactly the current material, else None.

    A re-run eval with other outputs writes other material: votes on the old outputs must not count.
    """
    eval_dir = Path(eval_dir)
    path, material = eval_dir / "review" / "results.json", eval_dir / ITEMS_FILE
    if not (path.exists() and material.exists()):
        return None
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return results if results.get("material_hash") == hash_file(material) else None
