"""Leakage detection: recall at a fixed false-positive rate, per method and combined.

Setup (CLINC150, ../shared/data/clinc150/data_full.json, seed 0):

* corpus ("train"): the train rows of half of the 150 intents (7,500 rows);
* positives: 1,000 corpus rows, each rewritten by one of four paraphrase-like perturbations
  (word edits, reordering, synonym swaps from a small table, all three mixed), on the test side;
* negatives, two calibrations: (a) the val+test rows of the *other* intents (strictly clean:
  a different request cannot be a leak); (b) the val+test rows of the *same* intents minus exact
  copies: the hard case, since CLINC crowd-workers often wrote near-identical queries, many of
  which are arguably real leaks.

Each method gives every test-side row a score (its best match in the corpus); each threshold is
calibrated on the negatives to a 1 % false-positive rate, and recall is measured on the
positives at that threshold. The combination flags a row when any method flags it, each
method calibrated to the same per-method FPR, the largest that keeps the union within 1 %. 13-gram overlap is
also shown at its own convention (flag any shared 13-gram; texts under 13 words: the whole
text), which has no threshold to calibrate, and tunerail's shipped defaults.

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
    "what": "which",
    "tell": "show",
    "want": "would like",
    "need": "require",
    "help": "assist",
    "find": "locate",
    "check": "verify",
    "buy": "purchase",
    "start": "begin",
    "get": "obtain",
    "say": "tell",
    "how": "in what way",
    "please": "kindly",
    "can": "could",
    "my": "the",
    "is": "appears",
    "make": "create",
    "book": "reserve",
    "cancel": "call off",
    "change": "modify",
    "use": "utilize",
    "know": "learn",
    "send": "transfer",
    "give": "provide",
    "set": "configure",
    "list": "catalogue",
    "car": "vehicle",
    "phone": "mobile",
    "money": "funds",
    "time": "hour",
    "should": "ought to",
    "call": "phone",
    "pay": "settle",
    "remind": "prompt",
    "add": "include",
    "look": "search",
    "order": "request",
    "new": "fresh",
    "bank": "financial institution",
    "account": "profile",
    "card": "credit card",
    "flight": "plane trip",
    "meeting": "appointment",
    "today": "this day",
    "tomorrow": "the next day",
    "play": "put on",
    "turn": "switch",
    "me": "myself",
    "you": "u",
    "for": "regarding",
    "do": "would",
    "have": "own",
    "are": "is",
    "when": "at what time",
    "will": "shall",
    "like": "prefer",
    "go": "head",
    "many": "a lot of",
    "much": "a lot",
    "where": "in which place",
    "take": "grab",
    "long": "lengthy",
    "next": "upcoming",
    "name": "title",
    "bill": "invoice",
    "good": "nice",
    "date": "day",
    "put": "place",
    "let": "allow",
    "current": "present",
    "days": "dates",
    "travel": "trip",
    "going": "about",
    "reservation": "booking",
    "vacation": "holiday",
    "song": "track",
    "number": "digits",
    "about": "regarding",
    "limit": "cap",
}
FILLERS = ("please", "just", "actually", "hey", "quickly", "now", "i think", "so")


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4:
        return word
    k = rng.randrange(1, len(word) - 2)
    return word[:k] + word[k + 1] + word[k] + word[k + 2 :]


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
    words[k : k + 2] = words[k : k + 2][::-1]
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


def perturb(text: str, kind: str, rng: random.Random) -> str:
    """A variant of ``text`` that differs from it after normalisation (retries no-op edits)."""
    from tunerail.data.records import normalize_text

    for _ in range(20):
        out = " ".join(VARIANTS[kind](text.split(), rng))
        if normalize_text(out) != normalize_text(text):
            return out
    return out


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
        scores["semantic"][start : start + 2048] = (vectors_q[start : start + 2048] @ corpus_t).max(axis=1)
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


def evaluate(scores: dict[str, np.ndarray], negative: np.ndarray, positive: np.ndarray, kinds: np.ndarray) -> dict[str, dict]:
    """Recall per method (and combined) at thresholds calibrated on ``negative`` to FPR."""
    from tunerail.config import TunerailConfig

    def row(flagged: np.ndarray, threshold) -> dict:
        return {
            "threshold": threshold,
            "fpr": round(float(flagged[negative].mean()), 4),
            "recall": round(float(flagged[positive].mean()), 4),
            "by_variant": {k: round(float(flagged[positive][kinds == k].mean()), 4) for k in VARIANTS},
        }

    methods = ("exact", "ngram13", "near", "semantic")
    table = {}
    for method in methods:
        t = calibrate(scores[method][negative], FPR)
        table[method] = row(scores[method] >= t, round(t, 4))
    # Combined: flag when any method flags, every method calibrated to the same per-method FPR,
    # the largest one whose union still stays within the FPR budget.
    for each in np.linspace(FPR, FPR / 20, 60):
        thresholds = {m: calibrate(scores[m][negative], each) for m in methods}
        union = np.any(np.stack([scores[m] >= thresholds[m] for m in methods]), axis=0)
        if union[negative].mean() <= FPR:
            break
    table["combined (any)"] = row(union, ", ".join(f"{m[:4]}>={t:.3f}" for m, t in thresholds.items() if m in ("near", "semantic")))
    table["ngram13 (convention)"] = row(scores["ngram13"] >= 1.0, "any shared 13-gram")
    cfg = TunerailConfig()
    defaults = (
        (scores["exact"] >= 1)
        | (scores["ngram13"] >= 1)
        | (scores["near"] >= cfg.doctor.near_duplicate_threshold)
        | (scores["semantic"] >= cfg.split.semantic_threshold)
    )
    table["tunerail defaults"] = row(defaults, f"near>={cfg.doctor.near_duplicate_threshold}, cos>={cfg.split.semantic_threshold}")
    return table


def main() -> None:
    from tunerail.data.records import normalize_text
    from tunerail.split.matching import embed

    data = json.loads((SHARED / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    rng = random.Random(SEED)
    intents = sorted({label for _, label in data["train"]})
    rng.shuffle(intents)
    own = set(intents[: len(intents) // 2])  # the corpus holds half of the intents
    corpus = [t for t, label in data["train"] if label in own]
    seen = {normalize_text(t) for t in corpus}
    held_out = [(t, label) for part in ("val", "test") for t, label in data[part]]
    cross = [t for t, label in held_out if label not in own]
    same = [t for t, label in held_out if label in own and normalize_text(t) not in seen]
    sources = rng.sample(range(len(corpus)), N_POSITIVES)
    kinds = [list(VARIANTS)[k % len(VARIANTS)] for k in range(N_POSITIVES)]
    positives = [perturb(corpus[i], kind, rng) for i, kind in zip(sources, kinds)]
    queries = cross + same + positives
    group = np.array(["cross"] * len(cross) + ["same"] * len(same) + ["pos"] * len(positives))

    start = time.perf_counter()
    vectors_c = embed(corpus)
    vectors_q = embed(queries)
    embed_s = time.perf_counter() - start
    start = time.perf_counter()
    scores = best_scores(queries, corpus, vectors_q, vectors_c)
    score_s = time.perf_counter() - start

    kinds_arr = np.array(kinds)
    tables = {
        "cross-intent negatives (strictly clean)": evaluate(scores, group == "cross", group == "pos", kinds_arr),
        "same-intent negatives (hard: independent rewordings of the same requests)": evaluate(
            scores, group == "same", group == "pos", kinds_arr
        ),
    }
    print(
        f"CLINC150: corpus = {len(corpus):,} train rows of {len(own)} intents; planted leaks: {len(positives):,} "
        f"perturbed corpus rows ({N_POSITIVES // len(VARIANTS)} per variant); negatives: {len(cross):,} val/test rows "
        f"of the other intents, or {len(same):,} val/test rows of the same intents (exact copies removed)"
    )
    print(f"target FPR {FPR:.0%}; embeddings {embed_s:.0f} s, scoring {score_s:.0f} s")
    for title, rows in tables.items():
        print(f"\ncalibrated on {title}")
        header = f"{'method':<22} {'threshold':>28} {'FPR':>6} {'recall':>7} " + " ".join(f"{k:>8}" for k in VARIANTS)
        print(header)
        print("-" * len(header))
        for method, r in rows.items():
            t = (
                r["threshold"]
                if isinstance(r["threshold"], str)
                else ("> 0 (any match)" if r["threshold"] < 1e-6 else f"{r['threshold']:.4f}")
            )
            print(f"{method:<22} {t:>28} {r['fpr']:>6.1%} {r['recall']:>7.1%} " + " ".join(f"{r['by_variant'][k]:>8.1%}" for k in VARIANTS))
    example = {k: [corpus[sources[n]], positives[n]] for n, k in enumerate(kinds[: len(VARIANTS)])}
    out = REPO / "bench" / "results" / "leakage.json"
    out.write_text(
        json.dumps(
            {
                "fpr_target": FPR,
                "corpus": len(corpus),
                "negatives_cross_intent": len(cross),
                "negatives_same_intent": len(same),
                "positives": len(positives),
                "seed": SEED,
                "tables": tables,
                "examples": example,
                "seconds": {"embeddings": round(embed_s, 1), "scoring": round(score_s, 1)},
            },
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
    print(f"\nexamples: {json.dumps(example, indent=1)}\nwrote {out}")


if __name__ == "__main__":
    main()
