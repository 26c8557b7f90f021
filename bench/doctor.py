"""Doctor benchmarks: full audit throughput, near-duplicates at 1M rows, semantic checks at 10k.

    PYTHONPATH=. python bench/doctor.py                      # everything, as reported
    PYTHONPATH=. python bench/doctor.py --rows 100000        # smaller near-duplicate corpus
    PYTHONPATH=. python bench/doctor.py --only near          # one part: audit | near | semantic

Prints a table per part and writes bench/results/doctor.json. Each part runs in its own
subprocess so that its peak RSS is its own (ru_maxrss of a child), not the whole bench's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TUNERAIL_SHARED_DATA", REPO.parent / "shared" / "data"))
if not SHARED.exists() and Path("/work/shared/data").exists():  # worktrees sit one level deeper
    SHARED = Path("/work/shared/data")
RESULTS = REPO / "bench" / "results" / "doctor.json"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# ---------------------------------------------------------------- synthetic corpus (part b)


def _source_sentences() -> list[str]:
    """Real sentences to learn word transitions from (bundled example + shared data if present)."""
    import csv

    texts = [r["text"] for r in csv.DictReader(open(REPO / "examples" / "banking77" / "train.csv"))]
    banking = SHARED / "banking77" / "train.csv"
    if banking.exists():
        texts += [r["text"] for r in csv.DictReader(open(banking))]
    for path in [SHARED / "instruct" / "user_oriented_instructions.jsonl"]:
        if path.exists():
            for line in open(path):
                row = json.loads(line)
                texts.append(row["instruction"])
                texts += [i["input"] for i in row.get("instances", [])] + [i["output"] for i in row.get("instances", [])]
    alpaca = SHARED / "instruct" / "alpaca_5000.json"
    if alpaca.exists():  # read in place (CC BY-NC), never copied
        for row in json.load(open(alpaca)):
            texts += [row["instruction"], row["output"]]
    return [t for t in texts if t]


def synthetic_corpus(
    n: int, plant_rate: float = 0.02, max_edit: float = 0.15, seed: int = 0
) -> tuple[list[str], list[tuple[int, int, float]]]:
    """``n`` sentences from a word-bigram chain over real text, with planted near-duplicates.

    A ``plant_rate`` share of rows is a copy of an earlier row with 0..``max_edit`` of its words
    substituted, inserted or deleted. Returns (texts, planted (source, copy, edit fraction)).
    """
    rng = np.random.default_rng(seed)
    ids: dict[str, int] = {}
    seqs = []
    for text in _source_sentences():
        seqs.append([ids.setdefault(w, len(ids)) for w in text.split()] + [-1])
    vocab = np.array(list(ids), dtype=object)  # dicts keep insertion order: vocab[i] has id i
    # successor table with multiplicity = bigram frequency; -1 ends a sentence (restart at a start word)
    succ: dict[int, list[int]] = {}
    starts = []
    for seq in seqs:
        starts.append(seq[0])
        for a, b in zip(seq, seq[1:]):
            succ.setdefault(a, []).append(b)
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    counts = np.zeros(len(ids), dtype=np.int64)
    flat = []
    for w in range(len(ids)):
        offsets[w] = len(flat)
        s = succ.get(w, [-1])
        flat.extend(s)
        counts[w] = len(s)
    flat_arr = np.array(flat, dtype=np.int64)
    starts_arr = np.array(starts, dtype=np.int64)
    n_src = n - int(n * plant_rate)
    texts: list[str] = []
    for start in range(0, n_src, 100_000):  # in chunks: the walk matrix stays ~100 MB
        m = min(100_000, n_src - start)
        lengths = np.clip(rng.lognormal(np.log(18), 0.6, m).astype(int), 6, 120)
        cur = starts_arr[rng.integers(0, len(starts_arr), m)]
        out = np.empty((m, lengths.max()), dtype=np.int64)
        for step in range(lengths.max()):
            out[:, step] = cur
            nxt = flat_arr[offsets[cur] + (rng.random(m) * counts[cur]).astype(np.int64)]
            restart = nxt < 0
            nxt[restart] = starts_arr[rng.integers(0, len(starts_arr), restart.sum())]
            cur = nxt
        texts += [" ".join(vocab[out[i, : lengths[i]]]) for i in range(m)]
    planted = []
    pyrng = random.Random(seed)
    for _ in range(n - n_src):
        src = pyrng.randrange(len(texts))
        frac = pyrng.uniform(0, max_edit)
        toks = texts[src].split()
        for _ in range(round(len(toks) * frac)):
            op = pyrng.choice("sid") if len(toks) > 3 else "s"
            i = pyrng.randrange(len(toks))
            if op == "s":
                toks[i] = vocab[pyrng.randrange(len(vocab))]
            elif op == "i":
                toks.insert(i, vocab[pyrng.randrange(len(vocab))])
            else:
                del toks[i]
        planted.append((src, len(texts), frac))
        texts.append(" ".join(toks))
    perm = rng.permutation(n)  # spread copies through the file, so any prefix holds planted pairs
    where = np.empty(n, dtype=np.int64)
    where[perm] = np.arange(n)
    texts = [texts[i] for i in perm]
    planted = sorted((int(min(where[a], where[b])), int(max(where[a], where[b])), f) for a, b, f in planted)
    return texts, planted


def _truth(texts, planted, threshold, ngram):
    from tunerail.doctor.near_duplicates import jaccard, shingles

    return [(a, b) for a, b, _ in planted if jaccard(shingles(texts[a], ngram), shingles(texts[b], ngram)) >= threshold]


_CPU: dict[str, float] = {}  # CPU seconds of the last run of each kind (wall time is shared on a busy box)


def _rensa_run(texts, threshold, num_perm, ngram):
    from tunerail.doctor.near_duplicates import clusters_from_pairs, near_duplicate_pairs

    t0, c0 = time.perf_counter(), time.process_time()
    pairs = near_duplicate_pairs(texts, threshold, num_perm, ngram)
    clusters = clusters_from_pairs(len(texts), pairs)
    _CPU["rensa"] = time.process_time() - c0
    return time.perf_counter() - t0, pairs, clusters


def _datasketch_run(texts, threshold, num_perm, ngram):
    """Plain datasketch: MinHash per row (same word shingles), MinHashLSH with the same bands, query each."""
    from datasketch import MinHash, MinHashLSH

    from tunerail.doctor.near_duplicates import lsh_bands, shingles

    bands = lsh_bands(threshold, num_perm)
    t0, c0 = time.perf_counter(), time.process_time()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=(bands, num_perm // bands))
    sketches = MinHash.bulk([[s.encode() for s in shingles(t, ngram)] for t in texts], num_perm=num_perm, seed=42)
    with lsh.insertion_session() as session:
        for i, mh in enumerate(sketches):
            session.insert(i, mh, check_duplication=False)
    pairs = []
    for i, mh in enumerate(sketches):
        pairs.extend((j, i) for j in lsh.query(mh) if j < i)
    raw_s = time.perf_counter() - t0
    _CPU["datasketch"] = time.process_time() - c0
    checked = [(j, i) for j, i in pairs if sketches[i].jaccard(sketches[j]) >= threshold]
    return raw_s, pairs, time.perf_counter() - t0, checked


def _precision_recall(texts, pairs, clusters, truth, threshold, ngram):
    """Precision: reported pairs whose exact Jaccard >= threshold. Recall: true planted pairs
    (exact Jaccard >= threshold) whose two rows end up in one cluster."""
    from tunerail.doctor.near_duplicates import jaccard, shingles

    sample = pairs if len(pairs) <= 200_000 else random.Random(0).sample(pairs, 200_000)
    good = sum(jaccard(shingles(texts[p[0]], ngram), shingles(texts[p[1]], ngram)) >= threshold for p in sample)
    cluster_of = {m: c for c, members in enumerate(clusters) for m in members}
    found = sum(a in cluster_of and cluster_of.get(a) == cluster_of.get(b) for a, b in truth)
    return good / max(1, len(sample)), found / max(1, len(truth))


def part_near(rows: int, sample_rows: int, threshold: float, num_perm: int, ngram: int) -> dict:
    """rensa pipeline on the whole corpus (first, so the peak RSS is its own), then rensa and
    plain datasketch side by side on the first ``sample_rows`` rows."""
    from tunerail.doctor.near_duplicates import clusters_from_pairs, lsh_bands

    t0 = time.perf_counter()
    texts, planted = synthetic_corpus(rows)
    out = {
        "rows": rows,
        "threshold": threshold,
        "num_perm": num_perm,
        "ngram": ngram,
        "bands": lsh_bands(threshold, num_perm),
        "planted": len(planted),
        "generate_s": round(time.perf_counter() - t0, 1),
        "corpus_rss_mb": round(_peak_rss_mb()),
        "mean_words": round(float(np.mean([t.count(" ") + 1 for t in texts[:100_000]])), 1),
    }
    if rows > sample_rows:
        truth = _truth(texts, planted, threshold, ngram)
        r_s, r_pairs, r_clusters = _rensa_run(texts, threshold, num_perm, ngram)
        out["stage_rss_mb"] = round(_peak_rss_mb())
        rp, rr = _precision_recall(texts, r_pairs, r_clusters, truth, threshold, ngram)
        out["full"] = {
            "rows": rows,
            "planted_true": len(truth),
            "rensa": {
                "seconds": round(r_s, 1),
                "cpu_seconds": round(_CPU["rensa"], 1),
                "pairs": len(r_pairs),
                "clusters": len(r_clusters),
                "precision": round(rp, 4),
                "recall": round(rr, 4),
            },
        }
        del r_pairs, r_clusters
    sample = texts[:sample_rows]
    sample_planted = [p for p in planted if p[1] < sample_rows]
    truth = _truth(sample, sample_planted, threshold, ngram)
    r_s, r_pairs, r_clusters = _rensa_run(sample, threshold, num_perm, ngram)
    out.setdefault("stage_rss_mb", round(_peak_rss_mb()))
    d_s, d_pairs, c_s, c_pairs = _datasketch_run(sample, threshold, num_perm, ngram)
    rp, rr = _precision_recall(sample, r_pairs, r_clusters, truth, threshold, ngram)
    dp, dr = _precision_recall(sample, d_pairs, clusters_from_pairs(len(sample), d_pairs), truth, threshold, ngram)
    cp, cr = _precision_recall(sample, c_pairs, clusters_from_pairs(len(sample), c_pairs), truth, threshold, ngram)
    out["sample"] = {
        "rows": len(sample),
        "planted": len(sample_planted),
        "planted_true": len(truth),
        "rensa": {
            "seconds": round(r_s, 2),
            "cpu_seconds": round(_CPU["rensa"], 2),
            "pairs": len(r_pairs),
            "precision": round(rp, 4),
            "recall": round(rr, 4),
        },
        "datasketch": {
            "seconds": round(d_s, 2),
            "cpu_seconds": round(_CPU["datasketch"], 2),
            "pairs": len(d_pairs),
            "precision": round(dp, 4),
            "recall": round(dr, 4),
        },
        "datasketch_checked": {"seconds": round(c_s, 2), "pairs": len(c_pairs), "precision": round(cp, 4), "recall": round(cr, 4)},
        "datasketch_over_rensa_time": round(d_s / r_s, 1),
        "datasketch_over_rensa_cpu": round(_CPU["datasketch"] / _CPU["rensa"], 1),
    }
    out["peak_rss_mb"] = round(_peak_rss_mb())
    return out


# ---------------------------------------------------------------- full audit (part a)


def part_audit(data: str) -> dict:
    """``tunerail.doctor.doctor`` on one file: every registered check, embeddings from the cache."""
    from tunerail.doctor import doctor

    t0, c0 = time.perf_counter(), time.process_time()
    result = doctor(data)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    by_check = {}
    for f in result.findings:
        by_check[f.check] = by_check.get(f.check, 0) + 1
    return {
        "data": str(Path(data).relative_to(SHARED.parent)) if SHARED.parent in Path(data).parents else data,
        "rows": result.rows_in,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "rows_per_s": round(result.rows_in / seconds, 1),
        "peak_rss_mb": round(_peak_rss_mb()),
        "findings": len(result.findings),
        "by_check": by_check,
        "stages_s": {k: round(v, 2) for k, v in sorted(result.timings.items(), key=lambda kv: -kv[1])[:8]},
    }


# ---------------------------------------------------------------- semantic checks (part c)


def part_semantic(rows: int, cold: bool) -> dict:
    """Embedding + the embedding checks on Banking77: cold (empty cache) or cached."""
    import tempfile

    from tunerail.config import TunerailConfig
    from tunerail.data.loaders import load_records
    from tunerail.doctor.context import CheckContext
    from tunerail.doctor.registry import all_checks

    records, rejections, fmt = load_records(SHARED / "banking77" / "train.csv")
    records = records[:rows]
    cache = Path(tempfile.mkdtemp()) if cold else None
    ctx = CheckContext(records, rejections, TunerailConfig(task="classification"), fmt, cache_dir=cache)
    out = {"rows": len(records), "cache": "cold" if cold else "warm"}
    t0, c0 = time.perf_counter(), time.process_time()
    ctx.prompt_embeddings
    out["embed_s"] = round(time.perf_counter() - t0, 1)
    for check in all_checks():
        if "embeddings" in check.needs:
            t = time.perf_counter()
            found = check.func(ctx)
            out[check.name] = {"seconds": round(time.perf_counter() - t, 1), "findings": len(found)}
    out["total_s"] = round(time.perf_counter() - t0, 1)
    out["total_cpu_s"] = round(time.process_time() - c0, 1)
    out["peak_rss_mb"] = round(_peak_rss_mb())
    return out


# ---------------------------------------------------------------- driver


def _child(args: list[str]) -> dict:
    """Run one part in a fresh interpreter, so its peak RSS is its own."""
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env)
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="synthetic near-duplicate corpus size")
    ap.add_argument("--sample-rows", type=int, default=100_000, help="rows for the rensa vs datasketch side by side")
    ap.add_argument("--semantic-rows", type=int, default=10_000, help="Banking77 rows for the semantic timing")
    ap.add_argument("--num-perm", type=int, default=256)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--only", choices=["audit", "near", "semantic"], action="append")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        if kind == "audit":
            res = part_audit(rest[0])
        elif kind == "near":
            res = part_near(int(rest[0]), int(rest[1]), float(rest[2]), int(rest[3]), 1)
        else:
            res = part_semantic(int(rest[0]), rest[1] == "cold")
        print(json.dumps(res))
        return 0

    parts = args.only or ["audit", "near", "semantic"]
    results: dict = {}
    results["machine"] = {
        "cpus": os.cpu_count(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
    }
    if "audit" in parts:
        results["audit"] = [
            _child(["audit", str(p)]) for p in [SHARED / "banking77" / "train.csv", SHARED / "instruct" / "alpaca_5000.json"] if p.exists()
        ]
        print("\nfull audit (tunerail.doctor.doctor, embeddings cached)")
        print(f"{'data':42} {'rows':>7} {'wall s':>8} {'cpu s':>8} {'rows/s':>8} {'peak MB':>8} {'findings':>9}")
        for r in results["audit"]:
            if "error" in r:
                print("  error:", r["error"])
                continue
            print(
                f"{r['data']:42} {r['rows']:>7} {r['seconds']:>8} {r['cpu_seconds']:>8} {r['rows_per_s']:>8} {r['peak_rss_mb']:>8} {r['findings']:>9}"
            )
    if "near" in parts:
        r = results["near"] = _child(
            ["near", str(args.rows), str(min(args.sample_rows, args.rows)), str(args.threshold), str(args.num_perm)]
        )
        if "error" not in r:
            print(
                f"\nnear-duplicates: word sets, {r['num_perm']} permutations, {r['bands']} bands, threshold {r['threshold']}, "
                f"{r['planted']} planted copies with 0-15 % word edits"
            )
            print(f"{'run':34} {'rows':>9} {'wall s':>8} {'cpu s':>8} {'pairs':>9} {'precision':>10} {'recall':>7}")
            smp = r["sample"]
            for name in ("rensa", "datasketch", "datasketch_checked"):
                x = smp[name]
                print(
                    f"{name + ' (same sample)':34} {smp['rows']:>9} {x['seconds']:>8} {x.get('cpu_seconds', ''):>8} {x['pairs']:>9} {x['precision']:>10} {x['recall']:>7}"
                )
            if "full" in r:
                x = r["full"]["rensa"]
                print(
                    f"{'rensa (full corpus)':34} {r['rows']:>9} {x['seconds']:>8} {x['cpu_seconds']:>8} {x['pairs']:>9} {x['precision']:>10} {x['recall']:>7}"
                )
            print(
                f"datasketch / rensa on the sample: {smp['datasketch_over_rensa_time']}x wall, {smp['datasketch_over_rensa_cpu']}x CPU; "
                f"peak RSS {r['peak_rss_mb']} MB "
                f"(includes the corpus; stage alone: {r.get('stage_rss_mb', '?')} MB)"
            )
        else:
            print("near: error:", r["error"])
    if "semantic" in parts:
        results["semantic"] = [_child(["semantic", str(args.semantic_rows), mode]) for mode in ("cold", "warm")]
        print("\nsemantic checks on Banking77")
        for r in results["semantic"]:
            print(json.dumps(r))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    merged = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}  # keep parts run separately
    merged.update(results)
    RESULTS.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
