"""The doctor on data it was not tuned on: clean rows flagged, planted cut and foreign rows found (issue 25 §3).

    PYTHONPATH=. python bench/doctor_unseen.py --gsm8k test.jsonl --gsm8k-dev train.jsonl --heldout HELDOUT_DIR

GSM8K (MIT, https://github.com/openai/grade-school-math) is read from the path given, never
committed: ``git show HEAD:grade_school_math/data/test.jsonl`` in a clone. Which data is which:

* development (the cut-off and language rules were tuned on these): GSM8K *train*, Alpaca 5000
  (../shared/data/instruct), tests/data/short_foreign_qa.tsv, and examples/e2e (the record-to-text
  rules: a description stating every value needs no final stop; different records are neither
  conflicts nor duplicates); the Alpaca seed tasks and user-oriented instructions (427 rows, ../shared/data/instruct:
  evaluation in rounds 1-2, but their misses were read in round 1, so development from round 3 on); and, from
  round 3, the even rows of the ``--heldout`` sets (see :func:`heldout_sets`);
* evaluation (not looked at while tuning): GSM8K *test* (1,319 rows), DialogSum dev + test summaries
  (1,000 rows, ../shared/data/summarization; added in the second round, its rows never read while tuning),
  the WNUT-17 example (extraction, JSON answers), Banking77 and CLINC150 (classification),
  tests/data/short_foreign_qa_heldout.tsv; from round 3, the odd rows of the ``--heldout`` sets: TruthfulQA's best
  answers (one sentence, no final stop), MBPP and HumanEval (Python), 151 Dolly rows. Those four sets were measured
  whole once on 87f22f6, before round 3 changed anything (bench/results/doctor_unseen_round3_before.md); only
  their even rows were read after that.

Per dataset, the doctor runs with the default config (semantic checks off; the tokenizer check
off, as in doctor_clean_rate.py it needs the model) and reports the share of clean rows named by
any finding at warning or above, per check. GSM8K answers are judged as published and without
their calculator annotations (``<<48/2=24>>``) and final ``#### N`` line (the form where 24.8 % were
flagged: answers ending in an equation or a number).
Into every generation dataset, 5 % of rows are cut (seeded: half mid-word, half at a word boundary
inside a sentence, at 30-95 % of the answer) and the foreign question/answer pairs are planted
(into WNUT-17, Banking77 and CLINC150 only the foreign rows: a post with no entity, a query under a
real intent); recall is the share of those rows that ``lengths.cut_off`` / ``language.mismatch``
name. Each dataset is planted ``--plantings`` times (seeds 25, 26, ...) and the counts pooled: one
planting of 20 cuts (the seed tasks) moved recall by 10 points from seed to seed.
Answer shapes (code, lists, JSON, math) are reported from the rows that have them.
Writes bench/results/doctor_unseen.json (+ .md).

With ``--model-checks`` the doctor also runs ``lengths.unfinished`` (``doctor.model_checks``: SmolLM2's odds of
the answer finishing where it stops), and the figures with and without it come from the same run (without:
the rows only that check named are left out). It reads rows with a language model, so ``--rows N`` measures
the first N rows of each dataset. Its threshold (``doctor.unfinished_z``) was chosen on the development sets
only (Alpaca, GSM8K train, E2E). Writes bench/results/doctor_unseen_lm.json (+ .md)::

    PYTHONPATH=. python bench/doctor_unseen.py --data ../shared/data --gsm8k test.jsonl --gsm8k-dev train.jsonl --model-checks --rows 400
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "doctor_unseen"
CUT_SHARE = 0.05
LM_CHECK = "lengths.unfinished"  # the language-model check, run with --model-checks (doctor.model_checks)


def cut(text: str, rng: random.Random, mode: str) -> str | None:
    """``text`` cut inside a word (``mode="word"``) or at a space inside a sentence, at 30-95 % of its length."""
    lo, hi = max(1, int(len(text) * 0.3)), int(len(text) * 0.95)
    if mode == "word":
        places = [i for i in range(lo, hi) if text[i - 1].isalpha() and text[i].isalpha()]
    else:
        places = [i for i in range(lo, hi) if text[i] == " " and text[i - 1].isalnum()]
    return text[: rng.choice(places)] if places else None


def foreign_pairs(path: Path) -> list[tuple[str, str, str]]:
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    return [(lang, q, a) for lang, q, a in rows]


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def shape(answer: str) -> str:
    from tunerail.doctor.checks.instruct import looks_like_code

    text = re.sub(r"<<[^<>\n]*>>", "", answer).strip()  # GSM8K's calculator annotations are not code
    if text.startswith(("{", "[")) and _parses(text):
        return "json"  # not Alpaca's bracketed placeholders ("[screenshot of Github website]", "[Jigsaw puzzle arranged]")
    if re.search(r"\d\s*[-+*/x×÷]\s*[$€£]?\d[^\n]*=", text) and "```" not in text:
        return "math"
    if "```" in text or looks_like_code(text):
        return "code"
    if re.search(r"(?m)^\s*(?:[-*•]|\d+[.)])\s+\S", text) and len(text.splitlines()) >= 2:
        return "list"
    return "prose"


def run_doctor(rows: list[dict], folder: Path, name: str, config: dict[str, Any]) -> tuple[int, dict[str, set[int]], dict[str, float]]:
    """Rows at warning or above per check, for ``rows`` written as JSONL (and the doctor's timings)."""
    from tunerail.config import TunerailConfig
    from tunerail.doctor import doctor
    from tunerail.findings import Severity

    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    cfg = TunerailConfig.model_validate({**config, "doctor": {"disabled_checks": ["lengths.truncated"], **config.get("doctor", {})}})
    result = doctor(path, cfg, semantic=False)
    by_check: dict[str, set[int]] = {}
    for f in result.findings:
        if Severity(f.severity) >= Severity.WARNING and f.rows:
            by_check.setdefault(f.check, set()).update(r.index for r in f.rows)
    return result.records, by_check, result.timings


def measure(
    name: str, role: str, rows: list[dict], answers: list[str], folder: Path, config: dict, plant: dict | None, seed: int = 25
) -> dict:
    """Clean-row flag rate (and recall of planted rows when ``plant`` gives a make-row function and pairs).

    ``plant["with_answer"]`` None: only foreign rows are planted (labels and JSON answers are not cut).
    """
    t0 = time.perf_counter()
    rng = random.Random(seed)
    planted_cut: list[int] = []
    planted_foreign: list[int] = []
    rows, answers = list(rows), list(answers)
    if plant is not None:
        order = rng.sample(range(len(rows)), len(rows))
        for i in order[: int(CUT_SHARE * len(rows))] if plant["with_answer"] else []:
            short = cut(answers[i], rng, rng.choice(["word", "sentence"]))
            if short is not None:
                rows[i] = plant["with_answer"](rows[i], short)
                planted_cut.append(i)
        spots = order[int(CUT_SHARE * len(rows)) :][: len(plant["pairs"])]
        for i, (_, q, a) in zip(spots, plant["pairs"]):
            rows[i] = plant["make"](q, a)
            planted_foreign.append(i)
    from tunerail.doctor.end_scores import CACHE_STATS

    scored_before = CACHE_STATS["scored"]
    n, by_check, timings = run_doctor(rows, folder, name.split()[0].replace("/", "_"), config)
    planted = set(planted_cut) | set(planted_foreign)
    clean = [i for i in range(n) if i not in planted]
    flagged = set().union(*by_check.values()) if by_check else set()
    # the same run without the language-model check (doctor.model_checks): the figures without the signal
    without = set().union(*(r for c, r in by_check.items() if c != LM_CHECK), set())
    shapes: dict[str, list[int]] = {}
    for i in clean:
        shapes.setdefault(shape(answers[i]), []).append(i)
    point = {
        "dataset": name,
        "role": role,
        "rows": n,
        "clean_rows": len(clean),
        "clean_flagged": sum(i in flagged for i in clean),
        "clean_flagged_share": round(sum(i in flagged for i in clean) / max(1, len(clean)), 4),
        "by_check": sorted(
            ({"check": c, "clean_rows": len(r - planted)} for c, r in by_check.items() if r - planted), key=lambda d: -d["clean_rows"]
        ),
        "by_shape": {
            s: {"rows": len(ix), "flagged_share": round(sum(i in flagged for i in ix) / len(ix), 4)} for s, ix in sorted(shapes.items())
        },
        "seconds": round(time.perf_counter() - t0, 1),
        "clean_flagged_without_lm": sum(i in without for i in clean),
        "lm_rows_scored": CACHE_STATS["scored"] - scored_before,
        "lm_seconds": round(timings.get(LM_CHECK, 0.0), 1),
    }
    if plant is not None:
        rule_cuts, lang = by_check.get("lengths.cut_off", set()), by_check.get("language.mismatch", set())
        cuts = rule_cuts | by_check.get(LM_CHECK, set())
        point["planted_cut"] = len(planted_cut)
        point["cut_found"] = sum(i in cuts for i in planted_cut)
        point["cut_found_without_lm"] = sum(i in rule_cuts for i in planted_cut)
        point["cut_recall"] = round(point["cut_found"] / max(1, len(planted_cut)), 4)
        point["planted_foreign"] = len(planted_foreign)
        point["foreign_found"] = sum(i in lang for i in planted_foreign)
        point["foreign_recall"] = round(point["foreign_found"] / max(1, len(planted_foreign)), 4)
        point["missed_cuts"] = [rows[i].get("answer", rows[i].get("output", ""))[-60:] for i in planted_cut if i not in cuts][:15]
        point["missed_foreign"] = [list(plant["pairs"][k][1:]) for k, i in enumerate(planted_foreign) if i not in lang]
    return point


def pooled(points: list[dict]) -> dict:
    """One point for several plantings of a dataset: counts summed, shares recomputed over all of them."""
    if len(points) == 1:
        return points[0]
    out = {**points[0], "plantings": len(points), "seconds": round(sum(p["seconds"] for p in points), 1)}
    keys = ("clean_rows", "clean_flagged", "planted_cut", "cut_found", "planted_foreign", "foreign_found", "clean_flagged_without_lm")
    for key in (*keys, "cut_found_without_lm", "lm_rows_scored", "lm_seconds"):
        out[key] = sum(p.get(key, 0) for p in points)
    out["clean_flagged_share"] = round(out["clean_flagged"] / max(1, out["clean_rows"]), 4)
    out["cut_recall"] = round(out["cut_found"] / max(1, out["planted_cut"]), 4)
    out["foreign_recall"] = round(out["foreign_found"] / max(1, out["planted_foreign"]), 4)
    checks: dict[str, int] = {}
    for p in points:
        for c in p["by_check"]:
            checks[c["check"]] = checks.get(c["check"], 0) + c["clean_rows"]
    out["by_check"] = sorted(({"check": c, "clean_rows": n} for c, n in checks.items()), key=lambda d: -d["clean_rows"])
    shapes: dict[str, list[float]] = {}
    for p in points:
        for sh, v in p["by_shape"].items():
            acc = shapes.setdefault(sh, [0, 0.0])
            acc[0] += v["rows"]
            acc[1] += v["rows"] * v["flagged_share"]
    out["by_shape"] = {sh: {"rows": int(n), "flagged_share": round(f / max(1, n), 4)} for sh, (n, f) in sorted(shapes.items())}
    out["missed_cuts"] = [m for p in points for m in p.get("missed_cuts", [])][:15]
    out["missed_foreign"] = [m for p in points for m in p.get("missed_foreign", [])][:15]
    return out


def gsm8k_sets(path: Path) -> tuple[list[dict], list[dict]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    bare = [re.sub(r"\n#### [^\n]*$", "", re.sub(r"<<[^<>\n]*>>", "", r["answer"])) for r in rows]
    return rows, [{"question": r["question"], "answer": a} for r, a in zip(rows, bare)]


def _instruction(q: str, a: str) -> dict:
    return {"instruction": q, "input": "", "output": a}


def heldout_sets(folder: Path) -> list[tuple[str, list[dict]]]:
    """The third round's sets (``--heldout``), as instruction rows: the even rows of each are development, the odd rows
    evaluation (never read while tuning; the whole sets were measured once before the round, on 87f22f6).

    truthfulqa.csv (TruthfulQA, Apache-2.0: question -> best answer), mbpp.jsonl (MBPP, CC-BY-4.0: task -> Python),
    humaneval.jsonl (HumanEval, MIT: signature and docstring -> body), dolly_151.jsonl (151 rows of
    databricks-dolly-15k, CC-BY-SA-3.0, as a copy in a public repository holds them). Files and SHA-256 in the results.
    """
    out: list[tuple[str, list[dict]]] = []
    with open(folder / "truthfulqa.csv", newline="", encoding="utf-8") as handle:
        truthful = [_instruction(r["Question"], r["Best Answer"]) for r in csv.DictReader(handle)]
    out.append(("truthfulqa (best answers)", truthful))
    mbpp = [json.loads(line) for line in (folder / "mbpp.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    out.append(("mbpp (code)", [_instruction(r["text"], r["code"].replace("\r\n", "\n")) for r in mbpp]))
    human = [json.loads(line) for line in (folder / "humaneval.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    complete = "Complete the body of this Python function."
    out.append(("humaneval (code)", [{"instruction": complete, "input": r["prompt"], "output": r["canonical_solution"]} for r in human]))
    dolly = []
    for line in (folder / "dolly_151.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        asked = re.search(r"### Instruction:\n(.*?)\n\n(?:### Input:\n(.*?)\n\n)?### Response:", row["prompt"], re.S)
        if asked:
            dolly.append({"instruction": asked.group(1), "input": asked.group(2) or "", "output": row["answer"]})
    out.append(("dolly (151 rows)", dolly))
    return out


def datasets(args: argparse.Namespace, heldout: list, dev: list) -> list[tuple]:
    """(name, role, rows, answers, config, plant) for every dataset measured."""
    shared = args.data
    gsm_plant = {"with_answer": lambda r, a: {**r, "answer": a}, "make": lambda q, a: {"question": q, "answer": a}}
    alp_plant = {"with_answer": lambda r, a: {**r, "output": a}, "make": _instruction}
    out: list[tuple] = []
    for path, role, pairs in ((args.gsm8k, "evaluation", heldout), (args.gsm8k_dev, "development", dev)):
        if path is None:
            continue
        raw, bare = gsm8k_sets(path)
        split = "test" if role == "evaluation" else "train"
        out.append((f"gsm8k {split} (as published)", role, raw, [r["answer"] for r in raw], {}, None))
        out.append((f"gsm8k {split} (no calculator, no ####)", role, bare, [r["answer"] for r in bare], {}, {**gsm_plant, "pairs": pairs}))
    alpaca = json.loads((shared / "instruct" / "alpaca_5000.json").read_text(encoding="utf-8"))
    out.append(("alpaca_5000", "development", alpaca, [r["output"] for r in alpaca], {}, {**alp_plant, "pairs": dev}))
    seeds = []
    for file in ("alpaca_seed_tasks.jsonl", "user_oriented_instructions.jsonl"):
        for line in (shared / "instruct" / file).read_text(encoding="utf-8").splitlines():
            task = json.loads(line)
            inst = task["instances"][0]
            seeds.append({"instruction": task["instruction"], "input": inst["input"], "output": inst["output"]})
    out.append(("instruct seeds + user-oriented", "development", seeds, [r["output"] for r in seeds], {}, {**alp_plant, "pairs": heldout}))
    dialogsum = []
    for file in ("dev.jsonl", "test.jsonl"):
        for line in (shared / "summarization" / "dialogsum" / file).read_text(encoding="utf-8").splitlines():
            talk = json.loads(line)
            dialogsum.append(
                {"instruction": "Summarise the dialogue.", "input": talk["dialogue"], "output": talk.get("summary") or talk["summary1"]}
            )
    out.append(
        ("dialogsum dev + test (summaries)", "evaluation", dialogsum, [r["output"] for r in dialogsum], {}, {**alp_plant, "pairs": heldout})
    )
    if args.heldout is not None:
        for name, rows in heldout_sets(args.heldout):  # even rows: development; odd rows: evaluation, never read
            for role, half, pairs in (("development", rows[0::2], dev), ("evaluation", rows[1::2], heldout)):
                label = f"{name}, {'even' if role == 'development' else 'odd'} rows"
                out.append((label, role, half, [r["output"] for r in half], {}, {**alp_plant, "pairs": pairs}))
    wnut = [json.loads(line) for line in (REPO / "examples" / "wnut17" / "posts.jsonl").read_text(encoding="utf-8").splitlines()]
    e2e = [json.loads(line) for line in (REPO / "examples" / "e2e" / "restaurants.jsonl").read_text(encoding="utf-8").splitlines()]
    e2e_cfg = {"data": {"format": "prompt_completion", "columns": {"prompt": "mr", "completion": "text"}}}
    e2e_plant = {"with_answer": lambda r, a: {**r, "text": a}, "make": lambda q, a: {"mr": q, "text": a}, "pairs": dev}
    out.append(("examples/e2e (records to text)", "development", e2e, [r["text"] for r in e2e], e2e_cfg, e2e_plant))
    wnut_cfg = {"task": "extraction", "data": {"format": "prompt_completion", "columns": {"prompt": "text", "completion": "entities"}}}
    no_entities = json.dumps({"person": [], "location": []})
    wnut_plant = {"with_answer": None, "make": lambda q, a: {"text": q, "entities": no_entities}, "pairs": heldout}
    out.append(("examples/wnut17 (extraction, JSON)", "evaluation", wnut, [r["entities"] for r in wnut], wnut_cfg, wnut_plant))
    with open(shared / "banking77" / "train.csv", newline="", encoding="utf-8") as handle:
        banking = [{"text": r["text"], "label": r["category"]} for r in csv.DictReader(handle)]
    clinc = [
        {"text": t, "label": lab} for t, lab in json.loads((shared / "clinc150" / "data_full.json").read_text(encoding="utf-8"))["train"]
    ]
    cls = {"task": "classification"}
    for name, rows in (("banking77 train", banking), ("clinc150 train", clinc)):
        label = rows[0]["label"]  # a foreign query under a real intent, as a mislabelled import would be
        foreign = {"with_answer": None, "make": lambda q, a, label=label: {"text": q, "label": label}, "pairs": heldout}
        out.append((name, "evaluation", rows, [r["label"] for r in rows], cls, foreign))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gsm8k", type=Path, help="GSM8K test.jsonl (held out)")
    parser.add_argument("--gsm8k-dev", type=Path, help="GSM8K train.jsonl (development)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--heldout", type=Path, help="folder of the third round's evaluation sets (see heldout_sets)")
    parser.add_argument("--only", help="measure only datasets whose name contains this")
    parser.add_argument("--plantings", type=int, default=5, help="plantings per dataset (seeds 25, 26, ...), pooled")
    parser.add_argument("--keep-others", action="store_true", help="keep the other datasets' rows of the results file (with their commit)")
    parser.add_argument("--model-checks", action="store_true", help=f"also run {LM_CHECK} (doctor.model_checks); writes doctor_unseen_lm.*")
    parser.add_argument("--rows", type=int, help="only the first ROWS rows of each dataset (the language-model check reads every row)")
    args = parser.parse_args()
    target = RESULTS.with_name("doctor_unseen_lm") if args.model_checks else RESULTS
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip() or None
    sys.path.insert(0, str(REPO))
    heldout = foreign_pairs(REPO / "tests" / "data" / "short_foreign_qa_heldout.tsv")
    dev = foreign_pairs(REPO / "tests" / "data" / "short_foreign_qa.tsv")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, role, rows, answers, config, plant in datasets(args, heldout, dev):
            if args.only and args.only not in name:
                continue
            seeds = range(25, 25 + (args.plantings if plant is not None else 1))
            rows, answers = rows[: args.rows], answers[: args.rows]
            if args.model_checks:
                config = {**config, "doctor": {**config.get("doctor", {}), "model_checks": True}}
            point = {**pooled([measure(name, role, rows, answers, Path(tmp), config, plant, seed) for seed in seeds]), "commit": commit}
            print(json.dumps({k: v for k, v in point.items() if not k.startswith("missed")}), file=sys.stderr)
            results.append(point)
    if args.keep_others and target.with_suffix(".json").exists():
        new = {p["dataset"]: p for p in results}
        old = json.loads(target.with_suffix(".json").read_text(encoding="utf-8"))["datasets"]
        results = [new.pop(p["dataset"], p) for p in old] + list(new.values())
    summary = {
        "goal_clean_share": 0.05,
        "goal_recall": 0.9,
        "cut_share": CUT_SHARE,
        "plantings": args.plantings,
        "rows_per_dataset": args.rows,
        "datasets": results,
        "heldout_files": (
            {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(args.heldout.iterdir()) if f.is_file()}
            if args.heldout
            else {}
        ),
        "when": time.strftime("%Y-%m-%d"),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    target.with_suffix(".json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    lines = lm_table(results, args) if args.model_checks else table(results, args)
    target.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def table(results: list[dict], args: argparse.Namespace) -> list[str]:
    """The main results table (doctor_unseen.md), without the language-model check."""
    lines = [
        "| dataset | role | rows | clean flagged | cut recall | foreign recall | by shape (share flagged) | top checks (clean rows) | commit |",
        "|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for p in results:
        shapes = ", ".join(f"{s} {v['flagged_share']:.1%} of {v['rows']}" for s, v in p["by_shape"].items())
        top = ", ".join(f"{c['check']} {c['clean_rows']}" for c in p["by_check"][:3])
        recall = (
            f"{p['cut_recall']:.1%} of {p['planted_cut']}" if p.get("planted_cut") else "",
            f"{p['foreign_recall']:.1%} of {p['planted_foreign']}" if p.get("planted_foreign") else "",
        )
        lines.append(
            f"| {p['dataset']} | {p['role']} | {p['rows']:,} | {p['clean_flagged_share']:.1%} | {recall[0]} | {recall[1]} | {shapes} | {top} | {p.get('commit') or ''} |"
        )
    lines += [
        "",
        f"Each planted dataset is planted {args.plantings} times (seeds 25-{24 + args.plantings}: 5 % of rows cut, the foreign",
        "pairs placed anew) and the counts pooled; rows and clean counts are summed over the plantings.",
        "Clean: rows not planted (real defects count: an upper bound). Goal: <= 5 % clean flagged, >= 90 % planted found.",
        "Role: development = the cut-off and language rules were tuned on it; evaluation = not. The seed tasks were",
        "evaluation in rounds 1-2, but their missed cuts and false alarms were read in round 1, so they are development",
        "from round 3 on. DialogSum was only ever measured, never read. examples/e2e is development: the record-to-text rules",
        "(a description stating every value needs no final stop; different records are not conflicts) were made on it.",
        "Foreign rows in banking77/clinc150 are the held-out queries under a real intent; in wnut17, posts with no entity.",
        "Round 2 (word_ends.py: a last word the data almost never ends a sentence or line with; a capitalised start of a",
        "word no row uses; a table row with fewer cells) was tuned on Alpaca's misses, with GSM8K train and e2e as the",
        "other development sets. Round 3 (--heldout: TruthfulQA, MBPP, HumanEval, Dolly; even rows development, odd rows",
        "evaluation): the parser judges Python answers, code requests keep their 'given' argument, one-word prompt",
        "substitutions are different tasks, and unpunctuated one-sentence answers lost three false alarms; the whole sets",
        "before round 3: doctor_unseen_round3_before.md. Shape json = the answer parses as JSON",
        "(Alpaca's bracketed placeholders such as '[screenshot of Github website]' are prose).",
        f"With the opt-in language-model check ({LM_CHECK}, doctor.model_checks): doctor_unseen_lm.md.",
    ]
    return lines


def lm_table(results: list[dict], args: argparse.Namespace) -> list[str]:
    """doctor_unseen_lm.md: the same rows with and without the language-model check, from one run each."""
    lines = [
        f"| dataset | role | rows | clean flagged without / with {LM_CHECK} | cut recall without / with | foreign recall | {LM_CHECK} on clean rows | commit |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for p in results:
        share = p["clean_flagged_without_lm"] / max(1, p["clean_rows"])
        share_with = p["clean_flagged"] / max(1, p["clean_rows"])  # not the rounded clean_flagged_share: both rounded once
        cut = (
            f"{p['cut_found_without_lm'] / p['planted_cut']:.1%} / {p['cut_recall']:.1%} of {p['planted_cut']}"
            if p.get("planted_cut")
            else ""
        )
        lm = next((c["clean_rows"] for c in p["by_check"] if c["check"] == LM_CHECK), 0)
        foreign = f"{p['foreign_recall']:.1%}" if p.get("planted_foreign") else ""
        lines.append(
            f"| {p['dataset']} | {p['role']} | {p['rows']:,} | {share:.1%} / {share_with:.1%} | {cut} | {foreign} | {lm} | {p.get('commit') or ''} |"
        )
    scored, seconds = sum(p.get("lm_rows_scored", 0) for p in results), sum(p.get("lm_seconds", 0.0) for p in results)
    lines += [
        "",
        f"First {args.rows or 'all'} rows of each dataset, planted {args.plantings} times (seeds 25-{24 + args.plantings}) and pooled, as in",
        f"doctor_unseen.md; 'without' leaves out the rows only {LM_CHECK} named, in the same run. The check scored {scored:,} rows",
        f"(not cached yet) in {seconds:,.0f} s: {1000 * seconds / max(1, scored):,.0f} s per 1,000 rows scored (model load included),",
        "on this machine's shared CPU (2 cores, OMP_NUM_THREADS=1, nice 15, other jobs running).",
        "Role as in doctor_unseen.md; doctor.unfinished_z was chosen on the development rows only (Alpaca, GSM8K train, E2E).",
    ]
    return lines


if __name__ == "__main__":
    main()
