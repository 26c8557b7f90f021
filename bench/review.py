"""Review app: agreement against published reference values, and loopback latency at 1,000 items.

1. Agreement: ``tunerail.review.results.agreement`` (which calls the ``krippendorff`` package) on
   the two reliability-data examples the package documents, against the published values:
   Krippendorff (2011) "Computing Krippendorff's alpha-reliability", 4 coders x 12 units:
   nominal 0.743, ordinal 0.815, interval 0.849, ratio 0.797; and the Wikipedia example,
   3 coders x 15 units: nominal 0.691, interval 0.811.
2. Latency: a 1,000-item session (two annotators, 20 % overlap: 1,200 units), uvicorn on
   127.0.0.1 in this process, an httpx client over real TCP. Page load = GET /item/N; vote round
   trip = POST /item/N (the vote is committed to SQLite, WAL, synchronous=FULL) answered by the 303.
   Both annotators answer their whole queue; p50/p95/max in ms.
3. A seeded simulated review (the same run): each simulated annotator reads the two answers on
   the page and judges by the quality grade written in them, with 15 % noise; the results table.

    python bench/review.py    # writes bench/results/review.json and review.md
"""

from __future__ import annotations

import html
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the seeded material and simulated annotator of the tests

import numpy as np  # noqa: E402

NAN = np.nan
K2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]
WIKI = [
    [NAN, NAN, NAN, NAN, NAN, 3, 4, 1, 2, 1, 1, 3, 3, NAN, 3],
    [1, NAN, 2, 1, 3, 3, 4, 3, NAN, NAN, NAN, NAN, NAN, NAN, NAN],
    [NAN, NAN, 2, 1, 3, 4, 4, NAN, 2, 1, 1, 3, 3, NAN, 4],
]
PUBLISHED = [
    ("Krippendorff 2011", K2011, "nominal", 0.743),
    ("Krippendorff 2011", K2011, "ordinal", 0.815),
    ("Krippendorff 2011", K2011, "interval", 0.849),
    ("Krippendorff 2011", K2011, "ratio", 0.797),
    ("Wikipedia example", WIKI, "nominal", 0.691),
    ("Wikipedia example", WIKI, "interval", 0.811),
]
ITEMS = 1000


def reference_values() -> list[dict]:
    from tunerail.review.results import agreement

    rows = []
    for name, matrix, level, published in PUBLISHED:
        ratings = {u: {f"c{c}": row[u] for c, row in enumerate(matrix) if not np.isnan(row[u])} for u in range(len(matrix[0]))}
        got = agreement(ratings, level)["alpha"]
        rows.append(
            {"data": name, "level": level, "published": published, "tunerail": round(got, 6), "match_3dp": round(got, 3) == published}
        )
    return rows


def ms(values: list[float]) -> dict:
    v = sorted(values)
    return {
        "n": len(v),
        "p50_ms": round(1000 * statistics.median(v), 2),
        "p95_ms": round(1000 * v[int(0.95 * (len(v) - 1))], 2),
        "max_ms": round(1000 * v[-1], 2),
    }


def latency_and_simulation() -> dict:
    import httpx

    from review_helpers import judge, make_material
    from tunerail.review.app import BackgroundServer, create_app
    from tunerail.review.session import compute_results, open_session

    folder = Path(tempfile.mkdtemp(prefix="tunerail-review-bench-"))
    make_material(folder, ITEMS, seed=11)
    session = open_session(folder, annotators=["alice", "bob"])
    loads, votes = [], []
    with BackgroundServer(create_app(session)) as server:
        for name in ("alice", "bob"):
            with httpx.Client(base_url=server.url, timeout=30) as client:
                first = client.get(f"/?token={session.tokens[name]}", follow_redirects=True)
                csrf = re.search(r'name="csrf" value="([^"]+)"', first.text).group(1)
                for pos in range(session.store.queue_length(name)):
                    t = time.perf_counter()
                    page = client.get(f"/item/{pos}")
                    loads.append(time.perf_counter() - t)
                    a, b = [html.unescape(x) for x in re.findall(r'<pre id="answer-[ab]">(.*?)</pre>', page.text, re.S)]
                    item = re.search(r"Reply (\d+),", a).group(1)
                    c = judge(name, a, b, item)
                    form = {
                        "csrf": csrf,
                        "preference": c["preference"],
                        "action": "vote",
                        **{f"q{q}a": str(c["a"][q]) for q in range(3)},
                        **{f"q{q}b": str(c["b"][q]) for q in range(3)},
                    }
                    t = time.perf_counter()
                    r = client.post(f"/item/{pos}", data=form)
                    votes.append(time.perf_counter() - t)
                    assert r.status_code == 303, r.text
        t = time.perf_counter()
        results = compute_results(session)
        results_s = time.perf_counter() - t
    return {
        "items": ITEMS,
        "units": results["units"],
        "votes": results["votes"],
        "page_load": ms(loads),
        "vote_round_trip": ms(votes),
        "results_s": round(results_s, 2),
        "results": results,
    }


def table(results: dict) -> str:
    lines = ["| system | wins | win rate (ties excluded) | 95 % Wilson CI | ties |", "|---|---:|---:|---:|---:|"]
    for p in results["pairs"]:
        for s in (p["first"], p["second"]):
            w = p["win_rate"][s]
            lines.append(
                f"| {s} | {p['wins'][s]} | {100 * w['value']:.1f} % | {100 * w['low']:.1f}-{100 * w['high']:.1f} % "
                f"| {p['ties']} of {p['votes']} |"
            )
    lines += ["", "| rubric | system | mean | 95 % CI |", "|---|---|---:|---:|"]
    for q in results["rubric"]:
        for s, e in q["systems"].items():
            lines.append(f"| {q['name']} | {s} | {e['mean']:.2f} | {e['low']:.2f}-{e['high']:.2f} |")
    lines += ["", "| question | level | alpha | raw agreement | items rated twice |", "|---|---|---:|---:|---:|"]
    for q, a in results["agreement"].items():
        alpha = f"{a['alpha']:.3f}" if a["alpha"] is not None else f"undefined ({a['undefined']})"
        lines.append(f"| {q} | {a['level']} | {alpha} | {100 * a['percent']:.1f} % | {a['units']} |")
    return "\n".join(lines)


def main() -> None:
    ref = reference_values()
    run = latency_and_simulation()
    out = {"reference": ref, **{k: v for k, v in run.items() if k != "results"}, "simulated_review": run["results"]}
    out["simulated_review"].pop("disagreed", None)
    results_dir = REPO / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "review.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    md = [
        "# bench/review.py",
        "",
        "## Agreement vs published values",
        "",
        "| data | level | published | tunerail | match (3 dp) |",
        "|---|---|---:|---:|---|",
    ]
    md += [f"| {r['data']} | {r['level']} | {r['published']} | {r['tunerail']} | {r['match_3dp']} |" for r in ref]
    md += [
        "",
        f"## Loopback latency, {ITEMS} items ({run['units']} units, {run['votes']} votes, 2 annotators)",
        "",
        "| request | n | p50 ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for key in ("page_load", "vote_round_trip"):
        m = run[key]
        md.append(f"| {key.replace('_', ' ')} | {m['n']} | {m['p50_ms']} | {m['p95_ms']} | {m['max_ms']} |")
    md += ["", f"results over all votes: {run['results_s']} s", "", "## Seeded simulated review", "", table(run["results"]), ""]
    (results_dir / "review.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
