"""The doctor's ML checks on real Banking77 rows with planted defects.

One module-scoped fixture plants near-duplicates, paraphrases, conflicting labels, flipped
labels and off-topic rows into the bundled example (1,500 real rows, 20 intents), runs every
check once, and the tests assert the exact rows found and that clean rows mostly are not.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest

from tunerail.config import TunerailConfig
from tunerail.data.loaders import load_records
from tunerail.doctor.context import CheckContext
from tunerail.doctor.registry import all_checks

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "banking77" / "train.csv"

# close rewordings of real rows (row index in the example -> paraphrase)
PARAPHRASES = {
    2: "I think the currency exchange applied is wrong.",
    75: "Why do I see an additional fee on my statement?",
    225: "A fee was charged when I paid using my card.",
    300: "I'm worried that too much time has gone by for my transfer to be completed.",
    675: "What is the meaning of a pending payment?",
    750: "How long will it take to get a refund for something I bought?",
    1051: "There is a transfer fee, please explain it to me.",
    1125: "The wrong exchange rate was applied to me when I took out cash.",
    1350: "Please help me with my card, it will not activate.",
    1425: "Why is there a fee when I took out money?",
}
OFF_TOPIC = [
    "The mitochondria is the powerhouse of the cell.",
    "Write a haiku about autumn leaves falling in the park.",
    "Who won the football world cup in 1998?",
    "Preheat the oven to 200 degrees and bake the bread for forty minutes.",
    "The quick brown fox jumps over the lazy dog.",
    "Translate 'good morning' into Japanese please.",
]


def _edit(text: str, rng: random.Random, vocab: list[str]) -> str:
    words = text.split()
    i = rng.randrange(len(words))
    op = rng.choice("sid")
    if op == "s":
        words[i] = rng.choice(vocab)
    elif op == "i":
        words.insert(i, rng.choice(vocab))
    else:
        del words[i]
    return " ".join(words)


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    """Plant every defect into the real rows, write a CSV, load it, run all ML checks once."""
    rows = list(csv.DictReader(open(EXAMPLE, newline="")))
    rng = random.Random(11)
    vocab = sorted({w for r in rows for w in r["text"].split()})
    labels = sorted({r["category"] for r in rows})
    out = [dict(r) for r in rows]
    plant: dict[str, dict[int, int]] = {"near": {}, "para": {}, "conflict": {}}
    long_rows = [i for i, r in enumerate(rows) if len(r["text"].split()) >= 10 and i not in PARAPHRASES]
    for src in rng.sample(long_rows, 20):
        plant["near"][src] = len(out)
        out.append({"text": _edit(rows[src]["text"], rng, vocab), "category": rows[src]["category"]})
    for src, text in PARAPHRASES.items():
        plant["para"][src] = len(out)
        out.append({"text": text, "category": rows[src]["category"]})
    taken = set(plant["near"]) | set(PARAPHRASES)
    for src in rng.sample([i for i in range(len(rows)) if i not in taken], 10):
        plant["conflict"][src] = len(out)
        other = rng.choice([lab for lab in labels if lab != rows[src]["category"]])
        out.append({"text": rows[src]["text"], "category": other})
    taken |= set(plant["conflict"])
    flipped = rng.sample([i for i in range(len(rows)) if i not in taken], 30)
    for i in flipped:
        out[i]["category"] = rng.choice([lab for lab in labels if lab != rows[i]["category"]])
    off_topic = []
    for text in OFF_TOPIC:
        off_topic.append(len(out))
        out.append({"text": text, "category": rng.choice(labels)})
    path = tmp_path_factory.mktemp("ml") / "planted.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows(out)
    records, rejections, fmt = load_records(path)
    ctx = CheckContext(records, rejections, TunerailConfig(task="classification"), fmt)
    findings = {c.name: c.func(ctx) for c in all_checks() if "DOC050" <= c.code <= "DOC099"}
    return {"findings": findings, "plant": plant, "flipped": flipped, "off_topic": off_topic, "n": len(out), "ctx": ctx}


def _together(findings) -> set[tuple[int, int]]:
    return {(a.index, b.index) for f in findings for a in f.rows for b in f.rows if a.index < b.index}


def _flagged(findings) -> set[int]:
    return {r.index for f in findings for r in f.rows}


def test_near_duplicates_found_with_every_member_and_fix_action(audit):
    found = audit["findings"]["duplicates.near"]
    together = _together(found)
    planted = audit["plant"]["near"].items()
    assert sum((s, c) in together for s, c in planted) >= 0.9 * len(planted)
    for f in found:
        # classification: rewordings of one intent are info and kept by --fix (split groups them)
        assert f.severity == "info" and f.details["fix_action"] == "keep"
        assert f.cluster == f"near-{f.rows[0].index}" and len(f.rows) == f.details["size"] >= 2
        assert all(r.line == r.index + 2 for r in f.rows)  # CSV: header on line 1
        assert len({audit["ctx"].records[r.index].label for r in f.rows}) == 1  # never mixes labels


def test_paraphrases_found_and_not_double_counted(audit):
    semantic = audit["findings"]["duplicates.semantic"]
    planted = audit["plant"]["para"].items()
    together = _together(semantic) | _together(audit["findings"]["duplicates.near"])
    assert sum((s, c) in together for s, c in planted) >= 0.9 * len(planted)
    near_pairs = _together(audit["findings"]["duplicates.near"])
    for f in semantic:
        pairs = _together([f])
        assert not pairs or not pairs <= near_pairs  # a cluster made only of near-duplicates is not repeated


def test_conflicting_labels_are_errors_listing_both_rows_and_labels(audit):
    conflicts = audit["findings"]["labels.conflict"]
    planted = audit["plant"]["conflict"].items()
    errors = [f for f in conflicts if f.severity == "error"]
    together = _together(errors)
    assert sum((s, c) in together for s, c in planted) >= 0.9 * len(planted)
    for f in errors:
        labels = f.details["labels"]
        assert len(labels) >= 2 and sorted(i for ix in labels.values() for i in ix) == [r.index for r in f.rows]
        assert [m["index"] for m in f.details["members"]] == [r.index for r in f.rows]
    # planted conflicts are not reported as duplicates to drop
    assert not {(s, c) for s, c in planted} & _together(audit["findings"]["duplicates.near"])


def test_flipped_labels_found_with_suggested_label(audit):
    found = audit["findings"]["labels.likely_mislabeled"]
    by_row = {f.rows[0].index: f for f in found}
    flipped = audit["flipped"]
    hits = [i for i in flipped if i in by_row]
    assert len(hits) >= 0.9 * len(flipped)
    rows = list(csv.DictReader(open(EXAMPLE, newline="")))
    right = sum(by_row[i].details["suggested"] == rows[i]["category"] for i in hits)
    assert right >= 0.8 * len(hits)  # the suggestion is the original label (some intents overlap)
    ranks = sorted(f.details["rank"] for f in found)
    assert ranks == list(range(1, len(found) + 1))
    assert all(0 < f.details["confidence"] <= 1 and f.details["given"] != f.details["suggested"] for f in found)
    planted = set(flipped) | set(audit["off_topic"]) | set(audit["plant"]["conflict"].values())
    clean_flagged = set(by_row) - planted
    assert len(clean_flagged) <= 0.03 * audit["n"]  # real label noise exists in Banking77; stay below 3 %


def test_off_topic_rows_are_outliers(audit):
    found = audit["findings"]["content.outlier"]
    flagged = _flagged(found)
    assert sum(i in flagged for i in audit["off_topic"]) >= 0.8 * len(audit["off_topic"])
    assert len(flagged - set(audit["off_topic"])) <= 0.05 * audit["n"]
    for f in found:
        assert 0 <= f.details["score"] <= 1 and f.details["relative_knn_distance"] > f.details["fence"]


def test_checks_skip_without_enough_rows_or_labels(tmp_path):
    path = tmp_path / "tiny.csv"
    path.write_text("text,category\nhello there,a\nhello there,b\nbye now,a\n")
    records, rejections, fmt = load_records(path)
    ctx = CheckContext(records, rejections, TunerailConfig(task="classification"), fmt)
    ctx.__dict__["prompt_embeddings"] = np.eye(3, 8, dtype=np.float32)  # no encoder needed for the skip
    checks = {c.name: c for c in all_checks()}
    assert checks["labels.likely_mislabeled"].func(ctx) == []
    assert checks["content.outlier"].func(ctx) == []
    conflict = checks["labels.conflict"].func(ctx)
    assert [[r.index for r in f.rows] for f in conflict] == [[0, 1]] and conflict[0].severity == "error"


def test_generation_conflicts_are_different_answers_to_the_same_prompt(shared_data, tmp_path):
    """Instruction rows (real, Apache-2.0): same instruction+input with another row's answer is a
    conflict; the same answer with a one-word edit is a near-duplicate, not a conflict."""
    import json

    src = [json.loads(line) for line in open(shared_data / "instruct" / "user_oriented_instructions.jsonl")][:60]
    rows = [{"instruction": r["instruction"], "input": r["instances"][0]["input"], "output": r["instances"][0]["output"]} for r in src]
    n = len(rows)
    conflicts = {}
    for k, i in enumerate(range(0, 10, 2)):
        conflicts[i] = len(rows)
        rows.append({**rows[i], "output": rows[30 + k]["output"]})
    agree = {}
    for i in range(11, 16):
        agree[i] = len(rows)
        rows.append({**rows[i], "output": rows[i]["output"] + " Thanks."})
    path = tmp_path / "instr.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records, rejections, fmt = load_records(path)
    ctx = CheckContext(records, rejections, TunerailConfig(task="generation"), fmt)
    checks = {c.name: c for c in all_checks()}
    found = checks["labels.conflict"].func(ctx)
    together = _together(found)
    assert all((i, j) in together for i, j in conflicts.items())
    assert not any((i, j) in together for i, j in agree.items())
    assert all(f.severity == "warning" and "answer" in f.details["members"][0] for f in found)
    assert len(_flagged(found) - set(conflicts) - set(conflicts.values())) <= 0.05 * n
