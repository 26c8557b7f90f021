"""Plant N defects of every kind into real Alpaca rows; the doctor must find >= 90 % of them
and flag few of the rows left untouched."""

from __future__ import annotations

import random

from doctor_helpers import EXPECTED, alpaca, eligible, flagged, plant, run, write_jsonl

PER_KIND = 12


def test_recall_of_planted_defects_and_clean_rows_mostly_unflagged(tmp_path, shared_data):
    rng = random.Random(7)
    rows = alpaca(shared_data)[:1500]
    free = list(range(len(rows)))
    rng.shuffle(free)
    planted: dict[str, set[int]] = {}
    for kind in EXPECTED:
        picks = [i for i in free if eligible(kind, rows[i])][:PER_KIND]
        assert len(picks) == PER_KIND, kind
        for n, i in enumerate(picks):
            rows[i] = plant(kind, rows[i], rng, n)
            free.remove(i)
        planted[kind] = set(picks)
    result = run(write_jsonl(tmp_path / "planted.jsonl", rows))

    recalls = {kind: len(flagged(result, EXPECTED[kind]) & idx) / len(idx) for kind, idx in planted.items()}
    missed = {k: r for k, r in recalls.items() if r < 0.9}
    assert not missed, f"recall below 0.9: {missed}"
    total = sum(len(flagged(result, EXPECTED[k]) & idx) for k, idx in planted.items())
    assert total / (PER_KIND * len(planted)) >= 0.95

    untouched = set(free)
    for check in EXPECTED.values():
        false_alarms = flagged(result, check) & untouched
        # The untouched Alpaca rows carry some real defects of their own; a check may flag a few.
        assert len(false_alarms) / len(untouched) <= 0.02, (check, sorted(false_alarms)[:10])
