"""Peak memory of a whole doctor audit (no semantic checks) against the number of rows.

    PYTHONPATH=. python bench/doctor_memory.py --rows distinct --sizes 100000 300000 1000000
    PYTHONPATH=. python bench/doctor_memory.py --rows templated --sizes 50000 100000 200000

Each audit runs in its own subprocess (``tunerail.doctor(path, semantic=False)`` with the default
config: every rule check, the tokenizer length check included), so ``ru_maxrss`` of the child is
that audit's peak RSS alone. Two row generators (see ``write_rows``): ``distinct`` rows as in most
real data, and ``templated`` rows where every query has n / 1,500 near-copies. A least-squares line
through each generator's points gives the per-row cost and the figure at 1M rows (measured when
1M was run, else stated as extrapolated). Points of earlier runs are kept in the results file and
refitted with new ones (a size measured again replaces its old point), so the curve can be built
over several sessions. Writes bench/results/doctor_memory.json and .md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
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


def write_rows(path: Path, n: int, long_row_mb: int = 0, seed: int = 0, rows: str = "templated") -> Path:
    """``templated``: one of the 1,500 bundled Banking77 queries + " (ref k)", so at n rows every query
    has n / 1,500 near-copies (a templated synthetic dataset, the hardest case for the duplicate checks);
    ``distinct``: three random queries joined, labelled by the first (1,500^3 combinations, so rows
    are distinct as in most real data, with a few chance copies and many partial overlaps)."""
    with open(REPO / "examples" / "banking77" / "train.csv", newline="", encoding="utf-8") as handle:
        source = [(r["text"], r["category"]) for r in csv.DictReader(handle)]
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as out:
        for k in range(n):
            text, label = source[rng.randrange(len(source))]
            if rows == "distinct":
                text = " ".join([text] + [source[rng.randrange(len(source))][0] for _ in range(2)])
            else:
                text = f"{text} (ref {k})"
            out.write(json.dumps({"text": text, "label": label}) + "\n")
        if long_row_mb:
            words = " ".join(rng.choice(("payment", "card", "transfer", "account", "money")) for _ in range(long_row_mb * 1024 * 1024 // 7))
            out.write(json.dumps({"text": words, "label": source[0][1]}) + "\n")
    return path


def measure(path: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO), path=str(path))], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fit(points: list[dict]) -> dict:
    """Least-squares line RSS = base + slope * rows, and the figure at 1M rows."""
    xs = [p["rows"] for p in points]
    ys = [p["peak_rss_mb"] for p in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread if spread else 0.0
    base = mean_y - slope * mean_x
    at_1m = next((p["peak_rss_mb"] for p in points if p["rows"] == 1_000_000), None)
    return {
        "kb_per_row": round(slope * 1024, 3),
        "base_mb": round(base, 1),
        "rss_at_1m_rows_mb": round(at_1m if at_1m is not None else base + slope * 1_000_000, 1),
        "at_1m_is": "measured" if at_1m is not None else "extrapolated (linear fit)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", choices=["distinct", "templated"], default="distinct")
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 300_000])
    parser.add_argument("--long-row-mb", type=int, default=50, help="0 skips the long-row case")
    parser.add_argument("--add-points", type=Path, help="JSON lines a run printed (stderr) to fold into the curves, e.g. after a crash")
    args = parser.parse_args()
    summary = json.loads(RESULTS.with_suffix(".json").read_text()) if RESULTS.with_suffix(".json").exists() else {}
    curves = summary.setdefault("curves", {})
    if "points" in summary:  # the file's first layout: one templated curve
        curves.setdefault("templated", {"points": summary.pop("points")})
    curve = curves.setdefault(args.rows, {"points": []})
    for line in args.add_points.read_text().splitlines() if args.add_points else []:
        if line.startswith("{") and '"peak_rss_mb"' in line:
            point = json.loads(line)
            name = "distinct" if "distinct" in point["case"] else "templated" if " rows" in point["case"] else None
            if name and "MB row" not in point["case"]:
                target = curves.setdefault(name, {"points": []})
                target["points"] = sorted([q for q in target["points"] if q["rows"] != point["rows"]] + [point], key=lambda q: q["rows"])
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = write_rows(Path(tmp) / f"rows_{n}.jsonl", n, rows=args.rows)
            point = {
                "case": f"{n} {args.rows} rows",
                **measure(path),
                "when": time.strftime("%Y-%m-%d"),
                "load_average": [round(x, 1) for x in os.getloadavg()],
            }
            print(json.dumps(point), file=sys.stderr, flush=True)
            curve["points"] = sorted([p for p in curve["points"] if p["rows"] != n] + [point], key=lambda p: p["rows"])
            curve.update(fit(curve["points"]))
            path.unlink()
            save(summary)
        if args.long_row_mb:
            summary["long_row"] = {
                "case": f"1000 short rows + one {args.long_row_mb} MB row",
                **measure(write_rows(Path(tmp) / "long.jsonl", 1000, args.long_row_mb)),
                "when": time.strftime("%Y-%m-%d"),
            }
            print(json.dumps(summary["long_row"]), file=sys.stderr)
    save(summary)
    print(RESULTS.with_suffix(".md").read_text())


def save(summary: dict) -> None:
    summary.update({"goal_mb": 2048, "python": sys.version.split()[0]})
    for curve in summary["curves"].values():
        curve.update(fit(curve["points"]))
    for stale in ("kb_per_row", "base_mb", "rss_at_1m_rows_mb", "at_1m_is", "when"):
        summary.pop(stale, None)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = ["| rows | generator | peak RSS (MB) | seconds | findings | load |", "|---:|---|---:|---:|---:|---|"]
    for name, curve in sorted(summary["curves"].items()):
        for p in curve["points"]:
            load = ", ".join(f"{x:.1f}" for x in p.get("load_average", [])) or "-"
            lines.append(f"| {p['rows']:,} | {name} | {p['peak_rss_mb']:.0f} | {p['seconds']:.1f} | {p['findings']:,} | {load} |")
    if summary.get("long_row"):
        p = summary["long_row"]
        lines.append(f"| {p['rows']:,} | {p['case']} | {p['peak_rss_mb']:.0f} | {p['seconds']:.1f} | {p['findings']:,} | - |")
    lines.append("")
    for name, curve in sorted(summary["curves"].items()):
        if len(curve["points"]) > 1:
            lines.append(
                f"- {name}: {curve['base_mb']:.0f} MB + {curve['kb_per_row']:.2f} KB/row; at 1M rows "
                f"{curve['rss_at_1m_rows_mb']:.0f} MB ({curve['at_1m_is']}; goal < 2048 MB, semantic checks off)."
            )
    RESULTS.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
