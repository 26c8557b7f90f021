"""Peak memory of a whole doctor audit (no semantic checks) against the number of rows.

    PYTHONPATH=. python bench/doctor_memory.py                       # 50k, 100k, 200k short rows + one 50 MB row
    PYTHONPATH=. python bench/doctor_memory.py --sizes 1000000       # the 1M-row point, if the machine has time

Each audit runs in its own subprocess (``tunerail.doctor(path, semantic=False)`` with the default
config: every rule check, the tokenizer length check included), so ``ru_maxrss`` of the child is
that audit's peak RSS alone. Rows are short Banking77-style queries with a label, varied by
a counter so that they are not all duplicates. A least-squares line through the points gives
the per-row cost and the extrapolation to 1M rows (stated as such when 1M was not run).
Writes bench/results/doctor_memory.json and .md.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "doctor_memory"

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
import tunerail
t0 = time.perf_counter()
result = tunerail.doctor({path!r}, semantic=False)
print(json.dumps({{"rows": result.rows_in, "findings": len(result.findings), "seconds": time.perf_counter() - t0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def write_rows(path: Path, n: int, long_row_mb: int = 0, seed: int = 0) -> Path:
    with open(REPO / "examples" / "banking77" / "train.csv", newline="", encoding="utf-8") as handle:
        source = [(r["text"], r["category"]) for r in csv.DictReader(handle)]
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as out:
        for k in range(n):
            text, label = source[rng.randrange(len(source))]
            out.write(json.dumps({"text": f"{text} (ref {k})", "label": label}) + "\n")
        if long_row_mb:
            words = " ".join(rng.choice(("payment", "card", "transfer", "account", "money")) for _ in range(long_row_mb * 1024 * 1024 // 7))
            out.write(json.dumps({"text": words, "label": source[0][1]}) + "\n")
    return path


def measure(path: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO), path=str(path))],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[50_000, 100_000, 200_000])
    parser.add_argument("--long-row-mb", type=int, default=50)
    parser.add_argument("--add-points", type=Path, default=None,
                        help="JSON lines of points measured by an earlier run (its stderr), fitted together with these")
    args = parser.parse_args()
    points = []
    if args.add_points:
        earlier = [json.loads(line) for line in args.add_points.read_text().splitlines() if line.strip()]
        points = [p for p in earlier if p["case"].endswith(" short rows")]  # the long-row case is measured here
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            point = {"case": f"{n} short rows", **measure(write_rows(Path(tmp) / f"rows_{n}.jsonl", n))}
            print(json.dumps(point), file=sys.stderr)
            points.append(point)
            Path(tmp, f"rows_{n}.jsonl").unlink()
        long_case = None
        if args.long_row_mb:
            long_case = {"case": f"1000 short rows + one {args.long_row_mb} MB row",
                         **measure(write_rows(Path(tmp) / "long.jsonl", 1000, args.long_row_mb))}
            print(json.dumps(long_case), file=sys.stderr)
    points.sort(key=lambda p: p["rows"])
    xs = [p["rows"] for p in points]
    ys = [p["peak_rss_mb"] for p in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = (sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)) if len(xs) > 1 else 0.0
    base = mean_y - slope * mean_x
    at_1m = base + slope * 1_000_000
    measured_1m = any(p["rows"] >= 1_000_000 for p in points)
    summary = {"points": points, "long_row": long_case, "kb_per_row": round(slope * 1024, 3), "base_mb": round(base, 1),
               "rss_at_1m_rows_mb": round(at_1m, 1), "at_1m_is": "measured" if measured_1m else "extrapolated (linear fit)",
               "goal_mb": 2048, "when": time.strftime("%Y-%m-%d"), "python": sys.version.split()[0]}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = ["| case | rows | peak RSS (MB) | seconds | findings |", "|---|---:|---:|---:|---:|"]
    for p in points + ([long_case] if long_case else []):
        lines.append(f"| {p['case']} | {p['rows']:,} | {p['peak_rss_mb']:.0f} | {p['seconds']:.1f} | {p['findings']:,} |")
    lines.append("")
    lines.append(f"Linear fit: {base:.0f} MB + {slope * 1024:.2f} KB/row -> {at_1m:.0f} MB at 1M rows "
                 f"({summary['at_1m_is']}; goal < 2048 MB, semantic checks off).")
    RESULTS.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
