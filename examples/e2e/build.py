"""Build the bundled restaurant-description example from the cleaned E2E NLG data (CC BY-SA 4.0).

Each row is a restaurant's meaning representation (``mr``: ``name[The Eagle], food[French], ...``)
and one human-written description of it (``text``). The cleaned release (Dušek et al., 2019)
re-annotated every MR to match its text, so a description says every attribute and nothing else.
Rows are a seeded sample of distinct MRs from the cleaned development and test files pooled, with
one of each MR's references picked at random: one row per MR keeps the test rows independent (the
bootstrap resamples rows) and gives the model as many different inputs as the row count allows.

Run from the repository root, with a clone of tuetschek/e2e-cleaning (commit 164acdf) beside it
(its cleaned training file is not in the clone's stored snapshot, so it is not used):

    python examples/e2e/build.py [PATH_TO_e2e-cleaning]
"""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[3] / "e2e-cleaning"
OUT = Path(__file__).resolve().parent / "restaurants.jsonl"
FILES = ("cleaned-data/devel-fixed.no-ol.csv", "cleaned-data/test-fixed.csv")
ROWS = 1000  # keeps the demo inside 15 minutes on 2 CPU cores (see README for the measured time)
SEED = 13


def main(source: Path = SOURCE) -> None:
    rng = random.Random(SEED)
    refs: dict[str, list[tuple[str, str]]] = {}
    for name in FILES:
        with open(source / name, encoding="utf-8", newline="") as f:
            for k, row in enumerate(csv.DictReader(f)):
                refs.setdefault(row["mr"], []).append((row["ref"].strip(), f"{Path(name).name}:{k + 2}"))
    mrs = rng.sample(sorted(refs), ROWS)
    rows = []
    for mr in mrs:
        text, where = rng.choice(refs[mr])
        rows.append({"mr": mr, "text": text, "source": where})
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {OUT}: {len(rows)} rows, one reference each, from {len(refs)} distinct MRs")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE)
