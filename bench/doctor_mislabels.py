"""Likely mislabels (labels.likely_mislabeled) on real intent data with planted label errors (issue 13 §6).

    PYTHONPATH=. python bench/doctor_mislabels.py                # Banking77, CLINC150, the example; seeds 0 1 2
    PYTHONPATH=. python bench/doctor_mislabels.py --seeds 0      # one seed (quicker)

Data: ../shared/data Banking77 train.csv (10,003 rows, 77 intents), CLINC150 data_full.json
train (15,000 rows, 150 intents) and the bundled examples/banking77/train.csv (1,500 rows, 20
intents: how the rules behave on a small set). Each seed plants label errors in 1.6 % of the rows:
1.2 % *confusable* flips (the row gets the other intent whose MiniLM centroid is nearest to
the row: the mistake an annotator choosing between similar intents makes) and 0.4 % random
flips. The planted rows are the truth; the data's own label noise is not known, so a "false"
flag may be a real error and precision is a lower bound.

Two rules on the same planted labels:

- ``old``: the check before issue 13 §6, frozen here: 5-fold logistic regression on MiniLM
  embeddings, cleanlab ``find_label_issues`` plus rows with self-confidence < 0.05 whose
  prediction differs; ranked by self-confidence.
- ``new``: ``tunerail.doctor.semantic.label_issues`` as the check calls it (embeddings + TF-IDF
  probabilities averaged, flagged when another class is ahead by ``doctor.mislabel_margin`` or ten
  times as likely,
  ranked by normalized margin).

Per rule: rows flagged by default (count, share), true errors among them (recall), precision,
recall of the top k rows by the rule's score at k = the planted count and at k = 5.3 % of the
rows (the issue's flag budget), recall per error kind, and seconds. Also the check itself on
the unplanted Banking77 rows (seconds with warm embeddings, rows flagged). Embeddings come from
``embed_texts`` (cached; the first run encodes 25k texts, minutes on CPU).
Writes bench/results/doctor_mislabels.json (+ .md).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "doctor_mislabels"
CONFUSABLE_RATE, RANDOM_RATE, BUDGET = 0.012, 0.004, 0.053
MARGINS = (0.2, 0.3, 0.4, 0.5)


def load(data: Path) -> dict[str, tuple[list[str], list[str]]]:
    with open(data / "banking77" / "train.csv", newline="", encoding="utf-8") as fh:
        b77 = [(r["text"], r["category"]) for r in csv.DictReader(fh)]
    clinc = json.loads((data / "clinc150" / "data_full.json").read_text(encoding="utf-8"))["train"]
    with open(REPO / "examples" / "banking77" / "train.csv", newline="", encoding="utf-8") as fh:
        example = [(r["text"], r["category"]) for r in csv.DictReader(fh)]
    return {
        "banking77 train": ([t for t, _ in b77], [c for _, c in b77]),
        "clinc150 train": ([t for t, _ in clinc], [c for _, c in clinc]),
        "examples/banking77 (bundled)": ([t for t, _ in example], [c for _, c in example]),
    }


def plant(emb: np.ndarray, labels: list[str], seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Flip 1.2 % of labels to the row's nearest other centroid and 0.4 % at random (seeded).

    Returns the noisy labels, a bool mask of flipped rows and a bool mask of the confusable ones.
    """
    sys.path.insert(0, str(REPO / "tests"))
    from doctor_helpers import flip_labels

    classes = sorted(set(labels))
    y = np.searchsorted(classes, labels)
    n = len(labels)
    n_conf, n_rand = round(CONFUSABLE_RATE * n), round(RANDOM_RATE * n)
    noisy, pick = flip_labels(emb, y, n_conf, n_rand, seed)
    flipped = np.zeros(n, bool)
    flipped[pick] = True
    confusable = np.zeros(n, bool)
    confusable[pick[:n_conf]] = True
    return [classes[k] for k in noisy], flipped, confusable


def old_rule(emb: np.ndarray, labels: list[str], seed: int = 0) -> tuple[np.ndarray, np.ndarray, list]:
    """The check before issue 13 §6 (frozen copy): flagged mask and score (low = worse) per row."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from threadpoolctl import threadpool_limits

    classes = sorted(set(labels))
    given = np.searchsorted(classes, labels)  # every class here has >= 5 rows: all rows audited
    model = make_pipeline(PCA(n_components=128, random_state=seed), LogisticRegression(C=10.0, max_iter=200, tol=1e-3))
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    with threadpool_limits(limits=1, user_api="blas"):  # same BLAS setting as the new rule: a fair time
        probs = cross_val_predict(model, emb, given, cv=cv, method="predict_proba")
    quality = get_label_quality_scores(given, probs, method="self_confidence")
    flagged = find_label_issues(given, probs) | ((quality < 0.05) & (probs.argmax(axis=1) != given))
    return flagged, quality, []


def new_rule(emb: np.ndarray, labels: list[str], texts: list[str], margin: float) -> tuple[np.ndarray, np.ndarray, list]:
    """The check's rule: flagged mask, score (low = worse), and the flags at other margins from the same run."""
    from tunerail.doctor.semantic import label_issues

    audit = label_issues(emb, labels, texts, min_margin=margin)
    assert audit is not None and len(audit.rows) == len(labels)  # every class here has >= 5 rows
    flagged = np.zeros(len(labels), bool)
    flagged[audit.rows[audit.issues]] = True
    ratio = (audit.margin + audit.pred_probs[np.arange(len(labels)), audit.given]) / audit.pred_probs[
        np.arange(len(labels)), audit.given
    ].clip(1e-12)
    ruled_out = ratio >= 10  # label_issues' min_ratio
    sweep = [(m, True, (audit.margin >= m) | ruled_out) for m in MARGINS] + [(margin, False, audit.margin >= margin)]
    return flagged, audit.quality, sweep


def score(flagged: np.ndarray, quality: np.ndarray, truth: np.ndarray, confusable: np.ndarray) -> dict:
    n, errors = len(truth), int(truth.sum())
    order = np.argsort(quality, kind="stable")
    hits = int((flagged & truth).sum())
    k_budget = int(BUDGET * n)
    return {
        "flagged": int(flagged.sum()),
        "flagged_share": round(float(flagged.mean()), 4),
        "true_flagged": hits,
        "recall": round(hits / errors, 4),
        "precision": round(hits / max(1, int(flagged.sum())), 4),
        "recall_confusable": round(float((flagged & confusable).sum() / confusable.sum()), 4),
        "recall_random": round(float((flagged & truth & ~confusable).sum() / (truth & ~confusable).sum()), 4),
        "top_k_planted": {"k": errors, "true": int(truth[order[:errors]].sum())},
        "top_k_budget": {"k": k_budget, "true": int(truth[order[:k_budget]].sum())},
    }


def check_on_real(texts: list[str], labels: list[str]) -> dict:
    """The registered check on the unplanted rows, embeddings already cached: seconds and rows flagged."""
    import tempfile

    from tunerail.config import TunerailConfig
    from tunerail.data.loaders import load_records
    from tunerail.doctor.context import CheckContext
    from tunerail.doctor.registry import all_checks

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "category"])
            writer.writerows(zip(texts, labels))
        records, rejections, fmt = load_records(path)
    ctx = CheckContext(records, rejections, TunerailConfig(task="classification"), fmt)
    ctx.prompt_embeddings  # noqa: B018 - warm (cached on disk), so the time is the check's own
    check = next(c for c in all_checks() if c.name == "labels.likely_mislabeled")
    t0 = time.perf_counter()
    findings = check.func(ctx)
    seconds = time.perf_counter() - t0
    old_flagged, _, _ = old_rule(ctx.prompt_embeddings, [str(r.label) for r in records])
    return {
        "rows": len(records),
        "flagged": len(findings),
        "flagged_share": round(len(findings) / len(records), 4),
        "seconds": round(seconds, 1),
        "old_flagged": int(old_flagged.sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tunerail.config import DoctorConfig
    from tunerail.data.embeddings import embed_texts

    margin = DoctorConfig().mislabel_margin
    points = []
    real = {}
    for name, (texts, labels) in load(args.data).items():
        emb = embed_texts(texts)
        for seed in args.seeds:
            noisy, truth, confusable = plant(emb, labels, seed)
            point = {
                "dataset": name,
                "rows": len(texts),
                "classes": len(set(labels)),
                "seed": seed,
                "planted": int(truth.sum()),
                "planted_confusable": int(confusable.sum()),
            }
            for rule, run in (("old", lambda: old_rule(emb, noisy)), ("new", lambda: new_rule(emb, noisy, texts, margin))):
                t0 = time.perf_counter()
                flagged, quality, sweep = run()
                point[rule] = {**score(flagged, quality, truth, confusable), "seconds": round(time.perf_counter() - t0, 1)}
            point["new_by_margin"] = [
                {"margin": m, "ruled_out": r, "flagged": int(f.sum()), "true_flagged": int((f & truth).sum())} for m, r, f in sweep
            ]
            print(json.dumps(point), file=sys.stderr)
            points.append(point)
        if name.startswith("banking77"):
            real[name] = check_on_real(texts, labels)
            print(json.dumps(real), file=sys.stderr)
    summary = {
        "margin": margin,
        "planted_rates": {"confusable": CONFUSABLE_RATE, "random": RANDOM_RATE},
        "budget_share": BUDGET,
        "points": points,
        "check_on_unplanted": real,
        "when": time.strftime("%Y-%m-%d"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    RESULTS.with_suffix(".md").write_text(markdown(summary))
    print(markdown(summary))


def markdown(summary: dict) -> str:
    lines = [
        "| dataset | seed | planted | rule | flagged (share) | true flagged (recall) | precision | "
        "recall confusable / random | top k=planted | top k=5.3 % | seconds |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in summary["points"]:
        for rule in ("old", "new"):
            r = p[rule]
            lines.append(
                f"| {p['dataset']} | {p['seed']} | {p['planted']} | {rule} | {r['flagged']:,} ({r['flagged_share']:.1%}) | "
                f"{r['true_flagged']} ({r['recall']:.1%}) | {r['precision']:.1%} | "
                f"{r['recall_confusable']:.1%} / {r['recall_random']:.1%} | "
                f"{r['top_k_planted']['true']}/{r['top_k_planted']['k']} | "
                f"{r['top_k_budget']['true']}/{r['top_k_budget']['k']} | {r['seconds']} |"
            )
    lines += [
        "",
        "Mean over seeds:",
        "",
        "| dataset | rule | flagged share | recall | precision | recall top k=planted | recall top k=5.3 % |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in dict.fromkeys(p["dataset"] for p in summary["points"]):
        pts = [p for p in summary["points"] if p["dataset"] == name]
        for rule in ("old", "new"):

            def mean(get):
                return sum(get(p[rule]) for p in pts) / len(pts)

            lines.append(
                f"| {name} | {rule} | {mean(lambda r: r['flagged_share']):.1%} | {mean(lambda r: r['recall']):.1%} | "
                f"{mean(lambda r: r['precision']):.1%} | "
                f"{mean(lambda r: r['top_k_planted']['true'] / r['top_k_planted']['k']):.1%} | "
                f"{sum(p[rule]['top_k_budget']['true'] for p in pts) / sum(p['planted'] for p in pts):.1%} |"
            )
    sweep = summary["points"][0]["new_by_margin"]
    lines += [
        "",
        "New rule at other margins, with the ratio rule (another label >= 10x the given) and without it "
        "(same runs; flagged rows / planted among them, summed over seeds):",
        "",
        "| dataset | " + " | ".join(f"margin {s['margin']}" + ("" if s["ruled_out"] else " only") for s in sweep) + " |",
        "|---|" + "---:|" * len(sweep),
    ]
    for name in dict.fromkeys(p["dataset"] for p in summary["points"]):
        pts = [p for p in summary["points"] if p["dataset"] == name]
        cells = [
            f"{sum(p['new_by_margin'][i]['flagged'] for p in pts):,} / {sum(p['new_by_margin'][i]['true_flagged'] for p in pts)}"
            for i in range(len(sweep))
        ]
        lines.append(f"| {name} ({sum(p['planted'] for p in pts)} planted) | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Planted: {summary['planted_rates']['confusable']:.1%} of rows flipped to the nearest other intent "
        f"(MiniLM centroid) + {summary['planted_rates']['random']:.1%} random flips, per seed. "
        f"new = flagged when another label is ahead by doctor.mislabel_margin ({summary['margin']}) or 10x as likely as the given one. Top k: planted errors among the "
        "k worst rows by the rule's score. The data's own label noise is unknown, so flagged rows not "
        "planted may still be wrong labels: precision is a lower bound."
    )
    for name, r in summary["check_on_unplanted"].items():
        lines.append(
            f"\nThe check on {name} as it is (nothing planted, warm embeddings): {r['flagged']:,} of "
            f"{r['rows']:,} rows flagged ({r['flagged_share']:.1%}), {r['seconds']} s; the rule before flagged "
            f"{r['old_flagged']:,} ({r['old_flagged'] / r['rows']:.1%}). Unplanted rows flagged are candidates for "
            "Banking77's own label noise, not known false alarms."
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
