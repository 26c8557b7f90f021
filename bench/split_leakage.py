"""Done-when figures: a grouped `split` leaves no leak; a naive random split leaks.

For Banking77 (train.csv, 10,003 rows) and CLINC150 (data_full.json train+val+test, 22,500 rows,
converted to JSONL in /tmp): run ``tunerail.split`` (exact, 13-gram, MinHash and paraphrase
grouping, seed 13), then ``leakage`` on its train/validation/test; then split the same rows with
scikit-learn's ``train_test_split`` (80/10/10, stratified, same seed) and run the same ``leakage``.

    python bench/split_leakage.py            # prints a table, writes bench/results/split_leakage.json
    python bench/split_leakage.py banking77  # only Banking77 (plus the planted paraphrases below)

Planted in-data paraphrases (issue 13 §8): 300 Banking77 queries of <= 12 words reworded with a
typo or a synonym (``bench/paraphrases.py``) are appended to the 10,003 rows; we count how many
planted pairs ``split`` keeps in one split, with the nearest-neighbour paraphrase rule
(``split.paraphrase_threshold``, default 0.5) and without it (null), how much grouping each
costs (groups, largest group, per-class deviation), and how many of the pairs a naive split
separates that ``leakage`` finds.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("TUNERAIL_SHARED_DATA", REPO.parent / "shared" / "data"))
if not SHARED.exists():
    SHARED = Path("/work/shared/data")


def clinc_jsonl(dest: Path) -> Path:
    data = json.loads((SHARED / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    with open(dest, "w", encoding="utf-8") as out:
        for part in ("train", "val", "test"):
            for text, label in data[part]:
                out.write(json.dumps({"text": text, "label": label}) + "\n")
    return dest


def naive_split(path: Path, config, work: Path, seed: int) -> dict[str, Path]:
    from sklearn.model_selection import train_test_split

    from tunerail.data.loaders import load_records

    records, _, _ = load_records(path, config.data.format, config.data.columns)
    labels = [r.label for r in records]
    train, rest = train_test_split(records, test_size=0.2, random_state=seed, stratify=labels)
    validation, test = train_test_split(rest, test_size=0.5, random_state=seed, stratify=[r.label for r in rest])
    paths = {}
    for name, rows in (("train", train), ("validation", validation), ("test", test)):
        paths[name] = work / f"naive_{name}.jsonl"
        paths[name].write_text("".join(json.dumps(r.fields) + "\n" for r in rows), encoding="utf-8")
    return paths


def leak_row(result) -> dict:
    return {
        f"{s['a']}~{s['b']}": {"pairs": s["leaking_pairs"], "rows_b": s["rows_b_leaking"], "of": s["rows_b"], "by_method": s["by_method"]}
        for s in result.summary
    }


def planted_paraphrases(work: Path, n_pairs: int = 300, seed: int = 5) -> dict:
    """Share of planted rewordings kept in one split (with and without the NN rule) and found by leakage."""
    import csv

    sys.path.insert(0, str(REPO / "bench"))
    from paraphrases import plant

    from tunerail.config import TunerailConfig
    from tunerail.split import split
    from tunerail.split.leakage import leakage

    with open(SHARED / "banking77" / "train.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    pairs = plant([r["text"] for r in rows], n_pairs, seed=seed)
    data = work / "planted.jsonl"
    with open(data, "w", encoding="utf-8") as out:
        for k, r in enumerate(rows):
            out.write(json.dumps({"text": r["text"], "label": r["category"], "row": k}) + "\n")
        for k, (src, text) in enumerate(pairs):
            out.write(json.dumps({"text": text, "label": rows[src]["category"], "row": len(rows) + k, "src": src}) + "\n")
    result: dict = {"pairs": len(pairs), "rows": len(rows) + len(pairs), "examples": [[rows[s]["text"], t] for s, t in pairs[:8]]}
    for name, threshold in (("nn_rule", 0.5), ("without_nn_rule", None)):
        config = TunerailConfig.model_validate(
            {"task": "classification", "data": {"format": "text_label"}, "split": {"semantic": True, "paraphrase_threshold": threshold}}
        )
        start = time.perf_counter()
        grouped = split(data, config, out_dir=work / f"planted_{name}", store=work / f"store_{name}")
        where = {}
        for part in ("train", "validation", "test"):
            for line in (work / f"planted_{name}" / f"{part}.jsonl").read_text(encoding="utf-8").splitlines():
                where[json.loads(line)["row"]] = part
        kept = sum(where[src] == where[len(rows) + k] for k, (src, _) in enumerate(pairs))
        totals = {label: sum(grouped.per_class[k].get(label, 0) for k in grouped.per_class) for label in grouped.per_class["train"]}
        shares = {"train": config.split.train, "validation": config.split.validation, "test": config.split.test}
        worst = {k: round(max(abs(grouped.per_class[k].get(label, 0) - shares[k] * n) for label, n in totals.items()), 1) for k in shares}
        result[name] = {
            "kept_in_one_split": kept,
            "share": round(kept / len(pairs), 4),
            "groups": grouped.groups,
            "sizes": grouped.sizes,
            "max_per_class_deviation_rows": worst,
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(f"planted {name}: {kept}/{len(pairs)} kept together", file=sys.stderr)
    config = TunerailConfig.model_validate({"task": "classification", "data": {"format": "text_label"}})
    naive = naive_split(data, config, work, config.split.seed)
    where = {}
    for part, path in naive.items():
        for k, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            where[json.loads(line)["row"]] = (part, k)
    straddling = [(src, len(rows) + k) for k, (src, _) in enumerate(pairs) if where[src][0] != where[len(rows) + k][0]]
    found = leakage(naive, config=config)
    flagged = set()
    for f in found.findings:
        (sa, sb), (ra, rb) = f.details["sets"], f.rows
        flagged.add(frozenset({(sa, ra.index), (sb, rb.index)}))
    hit = sum(frozenset({where[a], where[b]}) in flagged for a, b in straddling)
    by_check = {}
    for f in found.findings:
        by_check[f.check] = by_check.get(f.check, 0) + 1
    result["naive_split"] = {
        "straddling_pairs": len(straddling),
        "found_by_leakage": hit,
        "share": round(hit / max(1, len(straddling)), 4),
        "findings_by_check": by_check,
    }
    return result


def main() -> None:
    from tunerail.config import TunerailConfig
    from tunerail.split import split
    from tunerail.split.leakage import leakage

    work = Path(tempfile.mkdtemp(prefix="tunerail-bench-split-"))
    datasets = {
        "banking77": (SHARED / "banking77" / "train.csv", {"text": "text", "label": "category"}),
        "clinc150": (clinc_jsonl(work / "clinc150.jsonl"), {"text": "text", "label": "label"}),
    }
    wanted = set(sys.argv[1:]) or set(datasets)
    results = {}
    try:
        results["banking77_planted_paraphrases"] = planted_paraphrases(work)
        for name, (path, columns) in datasets.items():
            if name not in wanted:
                continue
            config = TunerailConfig.model_validate({"task": "classification", "data": {"format": "text_label", "columns": columns}})
            start = time.perf_counter()
            grouped = split(path, config, out_dir=work / name, store=work / "store")
            split_s = time.perf_counter() - start
            sets = {k: work / name / f"{k}.jsonl" for k in ("train", "validation", "test")}
            start = time.perf_counter()
            after = leakage(sets, config=config)
            leak_s = time.perf_counter() - start
            naive = leakage(naive_split(path, config, work, config.split.seed), config=config)
            totals = {label: sum(grouped.per_class[k].get(label, 0) for k in grouped.per_class) for label in grouped.per_class["train"]}
            shares = {"train": config.split.train, "validation": config.split.validation, "test": config.split.test}
            worst = {k: max(abs(grouped.per_class[k].get(label, 0) - shares[k] * n) for label, n in totals.items()) for k in shares}
            results[name] = {
                "rows": sum(grouped.sizes.values()),
                "sizes": grouped.sizes,
                "max_per_class_deviation_rows": {k: round(v, 1) for k, v in worst.items()},
                "groups": grouped.groups,
                "split_seconds": round(split_s, 1),
                "leakage_seconds": round(leak_s, 1),
                "thresholds": after.thresholds,
                "grouped_split": {"leaking_pairs": len(after.findings), "pairs": leak_row(after)},
                "naive_split": {
                    "leaking_pairs": len(naive.findings),
                    "pairs": leak_row(naive),
                    "test_rows_leaking_from_train": next(
                        s["rows_b_leaking"] for s in naive.summary if (s["a"], s["b"]) == ("train", "test")
                    ),
                },
            }
            print(f"{name}: done in {split_s + leak_s:.0f} s", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"\n{'dataset':<10} {'rows':>6} {'kept together (clusters/rows)':>30} {'grouped: leaks':>15} "
        f"{'naive: leaks':>13} {'naive: test rows leaking from train':>36}"
    )
    planted = results["banking77_planted_paraphrases"]
    print(f"\nplanted rewordings in Banking77: {planted['pairs']} pairs")
    for name in ("nn_rule", "without_nn_rule"):
        p = planted[name]
        print(
            f"    {name:<16} kept in one split {p['kept_in_one_split']}/{planted['pairs']} ({100 * p['share']:.1f} %); "
            f"groups {p['groups']['groups']}, largest {p['groups']['largest_group']}, "
            f"rows in multi-row groups {p['groups']['rows_in_multi_row_groups']}; worst per-class deviation {p['max_per_class_deviation_rows']}"
        )
    nv = planted["naive_split"]
    print(
        f"    naive split: {nv['straddling_pairs']} planted pairs straddle splits, leakage finds {nv['found_by_leakage']}; "
        f"findings {nv['findings_by_check']}"
    )
    for name, r in results.items():
        if name == "banking77_planted_paraphrases":
            continue
        g = r["groups"]
        print(
            f"{name:<10} {r['rows']:>6} {g['multi_row_groups']:>20}/{g['rows_in_multi_row_groups']:<9} "
            f"{r['grouped_split']['leaking_pairs']:>15} {r['naive_split']['leaking_pairs']:>13} "
            f"{r['naive_split']['test_rows_leaking_from_train']:>36}"
        )
        print(
            f"    grouped sizes {r['sizes']}; largest group {g['largest_group']} rows; worst per-class "
            f"deviation from the target count (rows): {r['max_per_class_deviation_rows']}"
        )
        for label, part in (("naive", r["naive_split"]), ("grouped", r["grouped_split"])):
            for pair, s in part["pairs"].items():
                print(f"    {label:<8} {pair:<22} pairs {s['pairs']:>5}  rows of B {s['rows_b']:>4}/{s['of']:<5} {s['by_method']}")
    out = REPO / "bench" / "results" / "split_leakage.json"
    if set(datasets) - wanted and out.exists():  # keep the other datasets' figures from an earlier full run
        results = {**json.loads(out.read_text()), **results}
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
