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


def synthetic_corpus(n: int, plant_rate: float = 0.02, max_edit: float = 0.15, seed: int = 0
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
    lengths = np.clip(rng.lognormal(np.log(16), 0.7, n_src).astype(int), 4, 120)
    cur = starts_arr[rng.integers(0, len(starts_arr), n_src)]
    out = np.empty((n_src, lengths.max()), dtype=np.int64)
    for step in range(lengths.max()):
        out[:, step] = cur
        nxt = flat_arr[offsets[cur] + (rng.random(n_src) * counts[cur]).astype(np.int64)]
        restart = nxt < 0
        nxt[restart] = starts_arr[rng.integers(0, len(starts_arr), restart.sum())]
        cur = nxt
    texts = [" ".join(vocab[out[i, :lengths[i]]]) for i in range(n_src)]
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


def _rensa_run(texts, threshold, num_perm, ngram):
    from tunerail.doctor.near_duplicates import clusters_from_pairs, near_duplicate_pairs

    t0 = time.perf_counter()
    pairs = near_duplicate_pairs(texts, threshold, num_perm, ngram)
    clusters = clusters_from_pairs(len(texts), pairs)
    return time.perf_counter() - t0, pairs, clusters


def _datasketch_run(texts, threshold, num_perm, ngram):
    """Plain datasketch: MinHash per row (same word shingles), MinHashLSH with the same bands, query each."""
    from datasketch import MinHash, MinHashLSH

    from tunerail.doctor.near_duplicates import lsh_bands, shingles

    bands = lsh_bands(threshold, num_perm)
    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=(bands, num_perm // bands))
    sketches = MinHash.bulk([[s.encode() for s in shingles(t, ngram)] for t in texts], num_perm=num_perm, seed=42)
    with lsh.insertion_session() as session:
        for i, mh in enumerate(sketches):
            session.insert(i, mh, check_duplication=False)
    pairs = []
    for i, mh in enumerate(sketches):
        pairs.extend((j, i) for j in lsh.query(mh) if j < i)
    return time.perf_counter() - t0, pairs


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
    from tunerail.doctor.near_duplicates import clusters_from_pairs, lsh_bands

    t0 = time.perf_counter()
    texts, planted = synthetic_corpus(rows)
    gen_s = time.perf_counter() - t0
    out = {"rows": rows, "threshold": threshold, "num_perm": num_perm, "ngram": ngram,
           "bands": lsh_bands(threshold, num_perm), "planted": len(planted), "generate_s": round(gen_s, 1),
           "mean_words": round(float(np.mean([t.count(" ") + 1 for t in texts[:100_000]])), 1)}
    # side by side on the same sample: the first sample_rows rows and the planted pairs inside them
    sample = texts[:sample_rows]
    sample_planted = [p for p in planted if p[1] < sample_rows]
    truth = _truth(sample, sample_planted, threshold, ngram)
    r_s, r_pairs, r_clusters = _rensa_run(sample, threshold, num_perm, ngram)
    d_s, d_pairs = _datasketch_run(sample, threshold, num_perm, ngram)
    rp, rr = _precision_recall(sample, r_pairs, r_clusters, truth, threshold, ngram)
    dp, dr = _precision_recall(sample, d_pairs, clusters_from_pairs(len(sample), d_pairs), truth, threshold, ngram)
    out["sample"] = {"rows": len(sample), "planted": len(sample_planted), "planted_true": len(truth),
                     "rensa": {"seconds": round(r_s, 2), "pairs": len(r_pairs), "precision": round(rp, 4), "recall": round(rr, 4)},
                     "datasketch": {"seconds": round(d_s, 2), "pairs": len(d_pairs), "precision": round(dp, 4), "recall": round(dr, 4)},
                     "datasketch_over_rensa_time": round(d_s / r_s, 1)}
    del r_pairs, r_clusters, d_pairs
    if rows > sample_rows:
        truth = _truth(texts, planted, threshold, ngram)
        r_s, r_pairs, r_clusters = _rensa_run(texts, threshold, num_perm, ngram)
        rp, rr = _precision_recall(texts, r_pairs, r_clusters, truth, threshold, ngram)
        out["full"] = {"rows": rows, "planted_true": len(truth), "rensa": {
            "seconds": round(r_s, 1), "pairs": len(r_pairs), "clusters": len(r_clusters),
            "precision": round(rp, 4), "recall": round(rr, 4)}}
    out["peak_rss_mb"] = round(_peak_rss_mb())
    return out
