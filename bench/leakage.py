"""Leakage detection: recall at a fixed false-positive rate, per method and combined.

Setup (CLINC150, ../shared/data/clinc150/data_full.json):

* corpus ("train"): the 15,000 CLINC150 train rows;
* negatives: the 4,500 CLINC150 test rows, minus the few that are exact (normalised) copies of a
  train row (those are real leaks, not negatives): same intents, so the hard case;
* positives: 1,000 train rows, each rewritten by one of four paraphrase-like perturbations
  (word edits, reordering, synonym swaps from a small table, and all three mixed), planted in
  the test side.

Each method gives every test-side row a score (its best match in the corpus); each threshold is
calibrated on the negatives to a 1 % false-positive rate, and recall is measured on the
positives at that threshold. The combination maps each method's score to its rank among the
negatives (empirical CDF) and takes the maximum, calibrated the same way. 13-gram overlap is
also shown at its own convention (flag any shared 13-gram; texts under 13 words: the whole
text), which has no threshold to calibrate.

    python bench/leakage.py     # prints a table, writes bench/results/leakage.json
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("TUNERAIL_SHARED_DATA", REPO.parent / "shared" / "data"))
if not SHARED.exists():
    SHARED = Path("/work/shared/data")

FPR = 0.01
N_POSITIVES = 1000
SEED = 0
SYNONYMS = {
    "what": "which", "tell": "show", "want": "would like", "need": "require", "help": "assist",
    "find": "locate", "check": "verify", "buy": "purchase", "start": "begin", "get": "obtain",
    "say": "tell", "how": "in what way", "please": "kindly", "can": "could", "my": "the",
    "is": "appears", "make": "create", "book": "reserve", "cancel": "call off", "change": "modify",
    "use": "utilize", "know": "learn", "send": "transfer", "give": "provide", "set": "configure",
    "list": "catalogue", "car": "vehicle", "phone": "mobile", "money": "funds", "time": "hour",
    "should": "ought to", "call": "phone", "pay": "settle", "remind": "prompt", "add": "include",
    "look": "search", "order": "request", "new": "fresh", "bank": "financial institution",
    "account": "profile", "card": "credit card", "flight": "plane trip", "meeting": "appointment",
    "today": "this day", "tomorrow": "the next day", "play": "put on", "turn": "switch",
}
FILLERS = ("please", "just", "actually", "hey", "quickly", "now", "i think", "so")


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4:
        return word
    k = rng.randrange(1, len(word) - 2)
    return word[:k] + word[k + 1] + word[k] + word[k + 2:]


def edit(words: list[str], rng: random.Random) -> list[str]:
    """One or two word edits: drop a word, insert a filler, or a typo."""
    words = list(words)
    for _ in range(rng.choice((1, 2))):
        op = rng.choice(("drop", "insert", "typo"))
        k = rng.randrange(len(words))
        if op == "drop" and len(words) > 3:
            del words[k]
        elif op == "insert":
            words.insert(k, rng.choice(FILLERS))
        else:
            words[k] = _typo(words[k], rng)
    return words


def reorder(words: list[str], rng: random.Random) -> list[str]:
    """Move a clause: swap the two halves at a random boundary, or swap two adjacent words."""
    if len(words) >= 4 and rng.random() < 0.6:
        k = rng.randrange(2, len(words) - 1)
        return words[k:] + words[:k]
    words = list(words)
    k = rng.randrange(len(words) - 1) if len(words) > 1 else 0
    words[k:k + 2] = words[k:k + 2][::-1]
    return words


def synonym(words: list[str], rng: random.Random) -> list[str]:
    """Replace up to two words from the synonym table (falls back to a filler when none match)."""
    words = list(words)
    spots = [k for k, w in enumerate(words) if w in SYNONYMS]
    rng.shuffle(spots)
    for k in spots[:2]:
        words[k] = SYNONYMS[words[k]]
    if not spots:
        words.insert(rng.randrange(len(words) + 1), rng.choice(FILLERS))
    return words


def mixed(words: list[str], rng: random.Random) -> list[str]:
    return reorder(edit(synonym(words, rng), rng), rng)


VARIANTS = {"edit": edit, "reorder": reorder, "synonym": synonym, "mixed": mixed}


def best_scores(queries: list[str], corpus: list[str], vectors_q, vectors_c) -> dict[str, np.ndarray]:
    """Each query's best match score in the corpus, per method, through tunerail's own finders."""
    from tunerail.split.matching import exact_matches, near_matches, ngram_matches

    n = len(queries)
    scores = {m: np.zeros(n) for m in ("exact", "ngram13", "near", "semantic")}
    for i, j, s in exact_matches(queries, corpus):
        scores["exact"][j] = 1.0
    for i, j, s in ngram_matches(queries, corpus):
        scores["ngram13"][j] = max(scores["ngram13"][j], 1.0)  # the convention: any shared 13-gram
    for i, j, s in near_matches(queries, corpus, threshold=0.3):  # below 0.3 counts as 0
        scores["near"][j] = max(scores["near"][j], s)
    corpus_t = vectors_c.T
    for start in range(0, n, 2048):
        scores["semantic"][start:start + 2048] = (vectors_q[start:start + 2048] @ corpus_t).max(axis=1)
    return scores


def calibrate(negative: np.ndarray, fpr: float) -> float:
    """Smallest threshold t with mean(negative >= t) <= fpr (flag when score >= t)."""
    values = np.unique(negative)[::-1]
    threshold = np.inf
    for t in values:
        if np.mean(negative >= t) > fpr:
            break
        threshold = t
    if np.isinf(threshold):  # even the top negative exceeds the budget: just above it
        threshold = np.nextafter(values[0], np.inf)
    return float(threshold) if threshold > 0 else float(np.nextafter(0, 1))


def main() -> None:
    from tunerail.data.records import normalize_text
    from tunerail.split.matching import embed

    data = json.loads((SHARED / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    corpus = [t for t, _ in data["train"]]
    seen = {normalize_text(t) for t in corpus}
    negatives = [t for t, _ in data["test"] if normalize_text(t) not in seen]
    rng = random.Random(SEED)
    sources = rng.sample(range(len(corpus)), N_POSITIVES)
    kinds = [list(VARIANTS)[k % len(VARIANTS)] for k in range(N_POSITIVES)]
    positives = [" ".join(VARIANTS[kind](corpus[i].split(), rng)) for i, kind in zip(sources, kinds)]
    queries = negatives + positives
    is_pos = np.array([False] * len(negatives) + [True] * len(positives))

    start = time.perf_counter()
    vectors_c = embed(corpus)
    vectors_q = embed(queries)
    embed_s = time.perf_counter() - start
    start = time.perf_counter()
    scores = best_scores(queries, corpus, vectors_q, vectors_c)
    score_s = time.perf_counter() - start

    ranks = {}
    for method, s in scores.items():
        neg_sorted = np.sort(s[~is_pos])
        ranks[method] = np.searchsorted(neg_sorted, s, side="right") / len(neg_sorted) * (s > 0)
    scores["combined"] = np.max(np.stack([ranks[m] for m in ("exact", "ngram13", "near", "semantic")]), axis=0)

    kinds_arr = np.array(kinds)
    rows = {}
    for method, s in scores.items():
        t = calibrate(s[~is_pos], FPR)
        flagged = s >= t
        rows[method] = {"threshold": round(t, 4), "fpr": round(float(flagged[~is_pos].mean()), 4),
                        "recall": round(float(flagged[is_pos].mean()), 4),
                        "by_variant": {k: round(float(flagged[is_pos][kinds_arr == k].mean()), 4) for k in VARIANTS}}
    native = scores["ngram13"] >= 1.0
    rows["ngram13 (convention)"] = {"threshold": "any shared 13-gram", "fpr": round(float(native[~is_pos].mean()), 4),
                                    "recall": round(float(native[is_pos].mean()), 4),
                                    "by_variant": {k: round(float(native[is_pos][kinds_arr == k].mean()), 4) for k in VARIANTS}}
    # tunerail's shipped defaults (leakage flags any method at its default threshold)
    from tunerail.config import TunerailConfig

    cfg = TunerailConfig()
    default = (scores["exact"] >= 1) | (scores["ngram13"] >= 1) | (scores["near"] >= cfg.doctor.near_duplicate_threshold) \
        | (scores["semantic"] >= cfg.split.semantic_threshold)
    rows["tunerail defaults"] = {
        "threshold": f"near>={cfg.doctor.near_duplicate_threshold}, cos>={cfg.split.semantic_threshold}",
        "fpr": round(float(default[~is_pos].mean()), 4), "recall": round(float(default[is_pos].mean()), 4),
        "by_variant": {k: round(float(default[is_pos][kinds_arr == k].mean()), 4) for k in VARIANTS}}

    print(f"CLINC150: corpus {len(corpus):,} train rows; {len(negatives):,} clean test rows; "
          f"{len(positives):,} planted leaks ({N_POSITIVES // len(VARIANTS)} per variant); target FPR {FPR:.0%}")
    print(f"embeddings {embed_s:.0f} s, scoring {score_s:.0f} s\n")
    header = f"{'method':<22} {'threshold':>24} {'FPR':>6} {'recall':>7} " + " ".join(f"{k:>8}" for k in VARIANTS)
    print(header)
    print("-" * len(header))
    for method, r in rows.items():
        t = r["threshold"] if isinstance(r["threshold"], str) else f"{r['threshold']:.4f}"
        print(f"{method:<22} {t:>24} {r['fpr']:>6.1%} {r['recall']:>7.1%} "
              + " ".join(f"{r['by_variant'][k]:>8.1%}" for k in VARIANTS))
    example = {k: [corpus[sources[n]], positives[n]] for n, k in enumerate(kinds[:len(VARIANTS)])}
    out = REPO / "bench" / "results" / "leakage.json"
    out.write_text(json.dumps({"fpr_target": FPR, "corpus": len(corpus), "negatives": len(negatives),
                               "positives": len(positives), "seed": SEED, "methods": rows, "examples": example,
                               "seconds": {"embeddings": round(embed_s, 1), "scoring": round(score_s, 1)}},
                              indent=2, sort_keys=True) + "\n")
    print(f"\nexamples: {json.dumps(example, indent=1)}\nwrote {out}")


if __name__ == "__main__":
    main()
