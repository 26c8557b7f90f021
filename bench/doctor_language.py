"""Short non-English rows planted among real English ones: does language.mismatch catch them? (issue 13).

    PYTHONPATH=. python bench/doctor_language.py            # old rule vs new rule, Banking77 and CLINC150
    PYTHONPATH=. python bench/doctor_language.py --lingua   # also lingua-language-detector, if installed

Plants the 196 short queries of tests/data/short_foreign_queries.tsv (banking, travel and small
talk in 14 languages, 2-13 words; our own translations; the thresholds were chosen on these) and,
separately, the 70 held-out ones of short_foreign_queries_heldout.tsv (written after the rule was
fixed; 19 languages) at seeded random places among the
real English rows of ../shared/data: Banking77 train (10,003 rows) and CLINC150 train (15,000),
one dataset each, and runs the doctor's language checks on it with the default config.

* recall: planted rows flagged by language.mismatch, by language and by length (letters, words);
* false alarms: real English rows flagged (all of them, and those under 30 letters: the short
  rows the new rule judges). The real rows are not all clean English (CLINC150's small talk has
  "merci beaucoup"), so this is an upper bound.

The *old rule* (rows under ``doctor.min_language_chars`` letters skipped) is the new run's
long-row findings: that branch of the check is unchanged, so no second run is needed. *New rule,
0.8* reruns with ``doctor.short_language_confidence: 0.8`` to show how the figures move with it.
Seconds are the language.mismatch check's own time (identification, script, common words);
the old rule's cost is the identification of the long rows alone. With ``--lingua``:
lingua-language-detector (all 75 languages, high-accuracy and low-accuracy modes) on the same
rows, "another language than English at confidence >= 0.5", as the short-text alternative.
Writes bench/results/doctor_language.json (+ .md).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "doctor_language"
QUERIES = REPO / "tests" / "data" / "short_foreign_queries.tsv"
HELDOUT = REPO / "tests" / "data" / "short_foreign_queries_heldout.tsv"
LENGTHS = [("< 15 letters", 0, 15), ("15-29 letters", 15, 30), (">= 30 letters", 30, 10**9)]


def foreign_queries(path: Path = QUERIES) -> list[tuple[str, str]]:
    """(language, text) of every query in the bundled file (comment lines start with #)."""
    rows = [line.rstrip("\n").split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    return [(lang, text) for lang, text in rows]


def english(data: Path, name: str) -> list[tuple[str, str]]:
    """(text, label) rows of a real English dataset."""
    import csv

    if name == "banking77":
        with open(data / "banking77" / "train.csv", newline="", encoding="utf-8") as handle:
            return [(r["text"], r["category"]) for r in csv.DictReader(handle)]
    return [(t, lab) for t, lab in json.loads((data / "clinc150" / "data_full.json").read_text(encoding="utf-8"))["train"]]


def letters(text: str) -> int:
    return sum(ch.isalpha() for ch in text)


def plant(rows: list[tuple[str, str]], queries: list[tuple[str, str]], seed: int) -> tuple[list[tuple[str, str]], dict[int, str]]:
    """The English rows with every query inserted at a random place; {position: language} of the planted rows."""
    rng = random.Random(seed)
    labels = sorted({lab for _, lab in rows})
    out = list(rows)
    for lang, text in queries:
        out.insert(rng.randrange(len(out) + 1), (text, rng.choice(labels)))
    planted_texts = {text: lang for lang, text in queries}
    return out, {i: planted_texts[t] for i, (t, _) in enumerate(out) if t in planted_texts}


def run_check(path: Path, **doctor_cfg: Any) -> tuple[dict[int, dict], float]:
    """{row: finding details} of language.mismatch and the check's seconds."""
    import tunerail
    from tunerail.config import TunerailConfig
    from tunerail.doctor.registry import all_checks

    off = [c.name for c in all_checks() if not c.name.startswith("language.")]
    cfg = TunerailConfig(task="classification", doctor={"disabled_checks": off, **doctor_cfg})
    result = tunerail.doctor(path, cfg, semantic=False)
    flagged = {r.index: f.details for f in result.findings if f.check == "language.mismatch" for r in f.rows}
    return flagged, result.timings.get("language.mismatch", 0.0)


def old_rule_seconds(texts: list[str], min_chars: int) -> float:
    from tunerail.doctor.checks.language import identify

    identify("warm up")
    t0 = time.perf_counter()
    for t in texts:
        if letters(t) >= min_chars:
            identify(t)
    return time.perf_counter() - t0


def score(rows: list[tuple[str, str]], planted: dict[int, str], flagged: set[int]) -> dict[str, Any]:
    """Recall overall, by language and by length; false alarms on the English rows (all, and short)."""
    by_lang: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_len: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_words: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for i, lang in planted.items():
        text = rows[i][0]
        hit = int(i in flagged)
        by_lang[lang][0] += hit
        by_lang[lang][1] += 1
        n = letters(text)
        bucket = next(name for name, lo, hi in LENGTHS if lo <= n < hi)
        by_len[bucket][0] += hit
        by_len[bucket][1] += 1
        words = len(text.split())
        wb = "1-3 words" if words <= 3 else "4-6 words" if words <= 6 else "7+ words"
        by_words[wb][0] += hit
        by_words[wb][1] += 1
    eng = [i for i in range(len(rows)) if i not in planted]
    short = [i for i in eng if letters(rows[i][0]) < 30]
    fp = sorted(i for i in eng if i in flagged)
    caught = sum(i in flagged for i in planted)
    return {
        "planted": len(planted),
        "caught": caught,
        "recall": round(caught / len(planted), 3),
        "by_language": {k: {"caught": v[0], "planted": v[1]} for k, v in sorted(by_lang.items())},
        "by_letters": {name: {"caught": by_len[name][0], "planted": by_len[name][1]} for name, _, _ in LENGTHS if name in by_len},
        "by_words": {k: {"caught": v[0], "planted": v[1]} for k, v in sorted(by_words.items())},
        "english_rows": len(eng),
        "english_flagged": len(fp),
        "english_flag_share": round(len(fp) / len(eng), 5),
        "short_english_rows": len(short),
        "short_english_flagged": sum(i in flagged for i in short),
        "english_flagged_texts": [rows[i][0] for i in fp][:40],
    }


def lingua_flags(texts: list[str], low: bool) -> tuple[set[int], float]:
    from lingua import Language, LanguageDetectorBuilder

    t0 = time.perf_counter()
    builder = LanguageDetectorBuilder.from_all_languages()
    detector = (builder.with_low_accuracy_mode() if low else builder).build()
    values = detector.compute_language_confidence_values_in_parallel(texts)
    flags = {i for i, v in enumerate(values) if v and v[0].language != Language.ENGLISH and v[0].value >= 0.5}
    return flags, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--lingua", action="store_true", help="also measure lingua-language-detector (pip install it first)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    sets = {"tuning": foreign_queries(QUERIES), "held-out": foreign_queries(HELDOUT)}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (qset, queries) in [(n, q) for n in ("banking77", "clinc150") for q in sets.items()]:
            rows, planted = plant(english(args.data, name), queries, args.seed)
            path = Path(tmp) / f"{name}.jsonl"
            path.write_text("".join(json.dumps({"text": t, "label": lab}, ensure_ascii=False) + "\n" for t, lab in rows), encoding="utf-8")
            new, new_s = run_check(path)
            new08, _ = run_check(path, short_language_confidence=0.8)
            old = {i for i, d in new.items() if "rule" not in d}
            rules = {
                "old rule (rows under 30 letters skipped)": (old, old_rule_seconds([t for t, _ in rows], 30)),
                "new rule: old + script of short rows only": (old | {i for i, d in new.items() if d.get("rule") == "script"}, None),
                "new rule (default, short_language_confidence 0.5)": (set(new), new_s),
                "new rule, short_language_confidence 0.8": (set(new08), None),
            }
            if args.lingua:
                for low in (False, True):
                    flags, sec = lingua_flags([t for t, _ in rows], low)
                    rules[f"lingua {'low' if low else 'high'}-accuracy mode, 75 languages, >= 0.5"] = (flags, sec)
            for rule, (flags, sec) in rules.items():
                point = {
                    "dataset": name,
                    "queries": qset,
                    "rows": len(rows),
                    "rule": rule,
                    "seconds": None if sec is None else round(sec, 2),
                    **score(rows, planted, flags),
                }
                print(json.dumps({k: v for k, v in point.items() if not k.startswith(("by_", "english_flagged_texts"))}), file=sys.stderr)
                results.append(point)
    summary = {
        "queries": {k: str(v.relative_to(REPO)) for k, v in (("tuning", QUERIES), ("held-out", HELDOUT))},
        "seed": args.seed,
        "results": results,
        "when": time.strftime("%Y-%m-%d"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.with_suffix(".json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    lines = [
        "| dataset | queries | rule | recall | < 15 letters | 15-29 letters | >= 30 letters | English rows flagged | of them < 30 letters | seconds |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in results:
        cells = [f"{b['caught']}/{b['planted']}" if (b := p["by_letters"].get(n)) else "-" for n, _, _ in LENGTHS]
        sec = "-" if p["seconds"] is None else f"{p['seconds']:.2f}"
        lines.append(
            f"| {p['dataset']} ({p['rows']:,}) | {p['queries']} | {p['rule']} | {p['recall']:.1%} | {' | '.join(cells)} | "
            f"{p['english_flagged']}/{p['english_rows']:,} | {p['short_english_flagged']}/{p['short_english_rows']:,} | {sec} |"
        )
    for qset in sets:
        langs = sorted(next(p for p in results if p["queries"] == qset)["by_language"])
        lines += [
            "",
            f"Recall by language, {qset} queries, old rule and new rule:",
            "",
            "| dataset, rule | " + " | ".join(langs) + " |",
            "|---|" + "---:|" * len(langs),
        ]
        for p in results:
            if p["queries"] == qset and p["rule"].startswith(("old rule", "new rule (default")):
                cells = [f"{p['by_language'][lang]['caught']}/{p['by_language'][lang]['planted']}" for lang in langs]
                lines.append(f"| {p['dataset']}, {p['rule'].split(' (')[0]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Short queries planted among the real rows (tuning: {len(sets['tuning'])} of {QUERIES.name}, "
        f"the set the thresholds were chosen on; held-out: {len(sets['held-out'])} of {HELDOUT.name}, written "
        f"after), one set at a time, seed {args.seed}; the "
        "English rows flagged are an upper bound on false alarms (CLINC150 has foreign small talk). "
        "Seconds: the language.mismatch check alone (lingua: detector build and detection, 2 threads).",
    ]
    RESULTS.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
