"""Recall and false-alarm rate of the rule-based doctor checks on defects planted into real Alpaca rows.

    python bench/doctor_rules_recall.py [--per-kind 40] [--seed 11]

Plants ``--per-kind`` defects of every kind (the planters of tests/doctor_helpers.py) into
distinct rows of ../shared/data/instruct/alpaca_5000.json, runs the doctor (no semantic
checks, no tokenizer) and prints, per kind, how many planted rows the expected check found and
how many untouched rows it flagged (the untouched Alpaca rows carry real defects too, so these
are an upper bound on false alarms). Writes bench/results/doctor_rules_recall.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from doctor_helpers import EXPECTED, alpaca, eligible, flagged, plant, run, write_jsonl  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=40)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    rows = alpaca(args.data)
    free = list(range(len(rows)))
    rng.shuffle(free)
    planted: dict[str, set[int]] = {}
    for kind in EXPECTED:
        picks = [i for i in free if eligible(kind, rows[i])][: args.per_kind]
        for n, i in enumerate(picks):
            rows[i] = plant(kind, rows[i], rng, n)
            free.remove(i)
        planted[kind] = set(picks)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = run(write_jsonl(Path(tmp) / "planted.jsonl", rows))
        seconds = time.perf_counter() - started
    untouched = set(free)
    table = []
    for kind, idx in planted.items():
        found = flagged(result, EXPECTED[kind])
        table.append(
            {
                "kind": kind,
                "check": EXPECTED[kind],
                "planted": len(idx),
                "found": len(found & idx),
                "recall": round(len(found & idx) / len(idx), 3),
                "untouched_flagged": len(found & untouched),
            }
        )
    total = sum(t["found"] for t in table) / sum(t["planted"] for t in table)
    print(f"{'kind':20} {'check':28} {'found':>9} {'recall':>7} {'untouched flagged':>18}")
    for t in table:
        print(
            f"{t['kind']:20} {t['check']:28} {t['found']:>4}/{t['planted']:<4} {t['recall']:>7.3f} {t['untouched_flagged']:>8}/{len(untouched)}"
        )
    print(f"overall recall {total:.3f}; doctor on {len(rows):,} rows in {seconds:.1f} s")
    out = REPO / "bench" / "results" / "doctor_rules_recall.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "per_kind": args.per_kind,
                "seed": args.seed,
                "rows": len(rows),
                "untouched": len(untouched),
                "overall_recall": round(total, 4),
                "seconds": round(seconds, 2),
                "table": table,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
