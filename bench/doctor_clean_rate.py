"""Share of real rows the doctor flags at warning or above, all checks together (issue 13, goal <= 5 %).

    PYTHONPATH=. python bench/doctor_clean_rate.py              # Banking77, CLINC150 (train), Alpaca 5000
    PYTHONPATH=. python bench/doctor_clean_rate.py --semantic   # with the MiniLM checks (slow on CPU)

Runs ``tunerail.doctor`` with the default config on each real dataset of ../shared/data as it
is, and counts the rows named by at least one finding of severity warning or error (dataset-level
findings name no rows and count for none). Nothing is planted: the real rows carry real defects
(Alpaca's known ones, Banking77's duplicates), so the flagged share is an upper bound on the
share of *clean* rows flagged. Per check, how many rows it flags, to see which checks drive the
figure. Semantic checks are off unless ``--semantic``. Writes bench/results/doctor_clean_rate.json (+ .md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "doctor_clean_rate"


def _clinc_train(data: Path, folder: Path) -> Path:
    """CLINC150's in-scope training split as a text/label JSONL (its file is one JSON object of splits)."""
    rows = json.loads((data / "clinc150" / "data_full.json").read_text(encoding="utf-8"))["train"]
    path = folder / "clinc150_train.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows), encoding="utf-8")
    return path


def measure(path: Path, name: str, semantic: bool) -> dict:
    import tunerail
    from tunerail.findings import Severity

    t0 = time.perf_counter()
    result = tunerail.doctor(path, semantic=semantic)
    flagged: set[int] = set()
    by_check: dict[str, set[int]] = {}
    for f in result.findings:
        if Severity(f.severity) >= Severity.WARNING and f.rows:
            rows = {r.index for r in f.rows}
            flagged |= rows
            by_check.setdefault(f.check, set()).update(rows)
    checks = sorted(((c, len(r)) for c, r in by_check.items()), key=lambda cr: -cr[1])
    return {
        "dataset": name,
        "task": result.task,
        "rows": result.records,
        "flagged_rows": len(flagged),
        "flagged_share": round(len(flagged) / max(1, result.records), 4),
        "semantic": semantic,
        "by_check": [{"check": c, "rows": n, "share": round(n / max(1, result.records), 4)} for c, n in checks],
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--semantic", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = [
            ("banking77/train.csv", args.data / "banking77" / "train.csv"),
            ("clinc150/data_full.json train", _clinc_train(args.data, Path(tmp))),
            ("instruct/alpaca_5000.json", args.data / "instruct" / "alpaca_5000.json"),
        ]
        for name, path in sets:
            point = measure(path, name, args.semantic)
            print(json.dumps(point), file=sys.stderr)
            results.append(point)
    summary = {"goal_share": 0.05, "datasets": results, "when": time.strftime("%Y-%m-%d")}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = ["| dataset | rows | flagged >= warning | share | top checks (rows) |", "|---|---:|---:|---:|---|"]
    for p in results:
        top = ", ".join(f"{c['check']} {c['rows']}" for c in p["by_check"][:4])
        lines.append(f"| {p['dataset']} | {p['rows']:,} | {p['flagged_rows']:,} | {p['flagged_share']:.1%} | {top} |")
    lines.append("")
    lines.append(
        "Real rows as they are (nothing planted): an upper bound on the share of clean rows flagged; "
        f"goal <= 5 %; semantic checks {'on' if args.semantic else 'off'}."
    )
    RESULTS.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
