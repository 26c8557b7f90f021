"""The E2E demo against what a data-to-text practitioner would try first, on the run's own frozen test rows.

Reads a finished ``tunerail run examples/e2e/tunerail.yaml`` folder (its split and the eval's cached
generations) and scores, with the eval's scorer (ROUGE-L per row, corpus BLEU) and the same paired
bootstrap, every alternative fitted on the run's train + validation rows:

- the two tunerail computes itself (``nearest_neighbour``, ``delex_neighbour``);
- ``delex_neighbour`` without the consensus choice (the first best-matching template), to show what it adds;
- a hand-written E2E template (one sentence per attribute group, the "template baseline" of the E2E
  challenge; written once from the attribute list, no data);
- the tuned model and the base model, as the eval generated them (read from the eval cache).

With a clone of tuetschek/e2e-cleaning (second argument), a second table scores TGen (the E2E challenge's
seq2seq baseline system, trained by its authors on the whole cleaned training set, ~33k descriptions, 40
times our rows: a ceiling, not a same-data alternative) on the test rows whose record is in the E2E test
file, beside every other system on the same rows.

Besides the metric, ``values`` is the share of the record's name, near, food, area and eatType
values written verbatim in the answer (a faithfulness proxy: a description must state them).

    python bench/demo_alternatives.py [RUN_DIR [E2E_CLEANING_CLONE]]    # default examples/e2e/runs/e2e-demo
    # writes bench/results/demo_alternatives.json and .md
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from run_outputs import eval_answers  # noqa: E402  (bench/ is on sys.path when run as a script)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
VERBATIM = ("name", "near", "food", "area", "eatType")

PRICE = {"cheap": "cheap", "moderate": "moderately priced", "high": "expensive"}
RATING_WORDS = {"low", "average", "high"}


def template(record: list[tuple[str, str]]) -> str:
    """The E2E practitioner's template: '<name> is a <food> <eatType> in <area> near <near>. It ...'."""
    values: dict[str, list[str]] = {}
    for key, value in record:
        values.setdefault(key, []).append(value)
    one = {k: v[0] for k, v in values.items()}
    noun = " and ".join(values.get("eatType", ["place"]))
    head = f"{one['name']} is a" if "name" in one else "There is a"
    food = f" {one['food']}" if "food" in one else ""
    where = ""
    if "area" in one:
        where += " in the riverside area" if one["area"] == "riverside" else f" in the {one['area']}"
    if "near" in one:
        where += f" near {one['near']}"
    first = f"{head}{food} {noun}{where}."
    facts = []
    if "priceRange" in one:
        p = one["priceRange"]
        facts.append(f"is {PRICE[p]}" if p in PRICE else f"has a price range of {p}")
    if "customer rating" in one:
        r = one["customer rating"]
        facts.append(f"has a {r} customer rating" if r in RATING_WORDS else f"is rated {r}")
    if "familyFriendly" in one:
        facts.append("is family-friendly" if one["familyFriendly"] == "yes" else "is not family-friendly")
    if not facts:
        return first
    tail = facts[0] if len(facts) == 1 else ", ".join(facts[:-1]) + " and " + facts[-1]
    return f"{first} It {tail}."


def values_share(prompts: list[str], outputs: list[str]) -> float:
    """Share of the records' verbatim-checkable values (name, near, food, area, eatType) written in the output."""
    from tunerail.eval.alternatives.delex import parse_record

    found = total = 0
    for prompt, out in zip(prompts, outputs):
        for key, value in parse_record(prompt) or []:
            if key in VERBATIM:
                total += 1
                found += value.lower() in out.lower()
    return found / total if total else float("nan")


def tgen_outputs(clone: Path) -> dict[str, str]:
    """TGen's output per cleaned test record (its output file follows the records' first appearance in test-fixed.csv)."""
    import csv

    with open(clone / "cleaned-data" / "test-fixed.csv", encoding="utf-8", newline="") as f:
        records = list(dict.fromkeys(row["mr"] for row in csv.DictReader(f)))
    texts = (clone / "system-outputs" / "train-clean_test-clean" / "tgen-std.run0.txt").read_text(encoding="utf-8").splitlines()
    if len(texts) != len(records):
        raise SystemExit(f"TGen outputs ({len(texts)}) do not align with the {len(records)} cleaned test records")
    return dict(zip(records, texts))


def subset_table(prompts: list[str], refs: list[str], outputs: dict[str, list[str]], tgen: dict[str, str]) -> dict[str, Any]:
    """Every system and TGen on the test rows whose record TGen answered, with the tuned model's paired gain over each."""
    from tunerail.scoring import score_generation
    from tunerail.stats import mean_ci, paired_bootstrap

    idx = [i for i, p in enumerate(prompts) if p in tgen]
    sub_refs = [refs[i] for i in idx]
    systems = {name: [texts[i] for i in idx] for name, texts in outputs.items()}
    systems["TGen (seq2seq + reranker, trained on the full cleaned E2E training set)"] = [tgen[prompts[i]] for i in idx]
    scores = {name: score_generation(sub_refs, texts).per_example["rougeL"] for name, texts in systems.items()}
    tuned = scores.get(TUNED)
    rows = []
    for name, rl in scores.items():
        row: dict[str, Any] = {"system": name, "rougeL": mean_ci(rl).to_dict()}
        if tuned is not None and name != TUNED:
            row["tuned_minus_this_rougeL"] = paired_bootstrap(tuned, rl).to_dict()
        rows.append(row)
    return {"rows": len(idx), "table": rows}


TUNED = "SmolLM2-135M + LoRA (tunerail run)"


def main(run: Path, clone: Path | None = None) -> dict[str, Any]:
    from tunerail.config import load_config
    from tunerail.eval.alternatives import FitData
    from tunerail.eval.alternatives import delex
    from tunerail.eval.alternatives.neighbours import fit_nearest_neighbour
    from tunerail.scoring import score_generation
    from tunerail.stats import bootstrap_statistic, mean_ci, paired_bootstrap

    config = load_config(REPO / "examples" / "e2e" / "tunerail.yaml")
    rows = {
        n: [json.loads(x) for x in (run / "split" / f"{n}.jsonl").read_text(encoding="utf-8").splitlines()]
        for n in ("train", "validation", "test")
    }
    col = config.data.columns
    data = FitData(
        "generation",
        [r[col["prompt"]] for r in rows["train"]],
        [r[col["completion"]] for r in rows["train"]],
        [r[col["prompt"]] for r in rows["validation"]],
        [r[col["completion"]] for r in rows["validation"]],
        [r[col["prompt"]] for r in rows["test"]],
    )
    refs = [r[col["completion"]] for r in rows["test"]]

    def first_best(d: FitData) -> tuple[list[str], dict[str, Any]]:
        saved, delex._consensus = delex._consensus, lambda texts: 0
        try:
            return delex.fit_delex_neighbour(d)
        finally:
            delex._consensus = saved

    systems: dict[str, Callable[[FitData], tuple[list[str], dict[str, Any]]]] = {
        "nearest training record's answer (MiniLM; tunerail)": fit_nearest_neighbour,
        "delexicalised nearest neighbour, consensus choice (tunerail)": delex.fit_delex_neighbour,
        "delexicalised nearest neighbour, first best match": first_best,
        "hand-written E2E template (no data)": lambda d: ([template(delex.parse_record(p) or []) for p in d.test_prompts], {}),
    }
    outputs: dict[str, list[str]] = {}
    seconds: dict[str, float | None] = {}
    for name, fit in systems.items():
        t = time.perf_counter()
        outputs[name], _ = fit(data)
        seconds[name] = round(time.perf_counter() - t, 1)
    names = {"tuned": TUNED, "base": "base SmolLM2-135M, zero-shot", "base_few_shot": "base SmolLM2-135M, 3-shot"}
    for name, texts in eval_answers(run).items():
        label = names.get(name, f"eval: {name}")
        outputs[label], seconds[label] = texts, None
    tuned = outputs.get(TUNED)
    tuned_scores = score_generation(refs, tuned) if tuned else None
    table = []
    for name, texts in outputs.items():
        s = score_generation(refs, texts)
        row: dict[str, Any] = {
            "system": name,
            "rougeL": mean_ci(s.per_example["rougeL"]).to_dict(),
            "bleu": bootstrap_statistic(s.corpus["bleu"], len(refs), resamples=300).to_dict(),
            "values_written": round(values_share(data.test_prompts, texts), 3),
            "fit_predict_s": seconds[name],
            "example": texts[0],
        }
        if tuned_scores is not None and texts is not tuned:
            row["tuned_minus_this_rougeL"] = paired_bootstrap(tuned_scores.per_example["rougeL"], s.per_example["rougeL"]).to_dict()
        table.append(row)
    tgen = subset_table(data.test_prompts, refs, outputs, tgen_outputs(clone)) if clone else None
    return {
        "tgen_subset": tgen,
        "run": str(run),
        "test_rows": len(refs),
        "fit_rows": len(data.fit_prompts),
        "reference_example": refs[0],
        "record_example": data.test_prompts[0],
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version()},
        "table": table,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# E2E demo vs the practitioner's alternatives ({result['test_rows']} frozen test rows, fitted on {result['fit_rows']})",
        "",
        f"Run: `{result['run']}`; load average {', '.join(f'{x:.1f}' for x in result['machine']['load_average'])} on {result['machine']['cpus']} CPUs.",
        "",
        "| system | ROUGE-L | 95 % CI | BLEU | 95 % CI | values written | tuned - this (ROUGE-L, 95 % CI) | s |",
        "| --- | ---: | --- | ---: | --- | ---: | --- | ---: |",
    ]
    for r in sorted(result["table"], key=lambda r: -r["rougeL"]["value"]):
        rl, b = r["rougeL"], r["bleu"]
        d = r.get("tuned_minus_this_rougeL")
        diff = f"{d['value']:+.3f} ({d['low']:+.3f} to {d['high']:+.3f})" if d else "-"
        lines.append(
            f"| {r['system']} | {rl['value']:.3f} | {rl['low']:.3f}-{rl['high']:.3f} | {b['value']:.1f} | {b['low']:.1f}-{b['high']:.1f} "
            f"| {r['values_written']:.3f} | {diff} | {r['fit_predict_s'] if r['fit_predict_s'] is not None else '-'} |"
        )
    if result.get("tgen_subset"):
        sub = result["tgen_subset"]
        lines += ["", f"On the {sub['rows']} test rows whose record is in the E2E test file (TGen answered those):", ""]
        lines += ["| system | ROUGE-L | 95 % CI | tuned - this (95 % CI) |", "| --- | ---: | --- | --- |"]
        for r in sorted(sub["table"], key=lambda r: -r["rougeL"]["value"]):
            d = r.get("tuned_minus_this_rougeL")
            diff = f"{d['value']:+.3f} ({d['low']:+.3f} to {d['high']:+.3f})" if d else "-"
            lines.append(f"| {r['system']} | {r['rougeL']['value']:.3f} | {r['rougeL']['low']:.3f}-{r['rougeL']['high']:.3f} | {diff} |")
    lines += ["", f"Record: `{result['record_example']}`", f"Reference: {result['reference_example']}", ""]
    lines += [f"- {r['system']}: {r['example']}" for r in result["table"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "examples" / "e2e" / "runs" / "e2e-demo"
    result = main(run_dir, Path(sys.argv[2]) if len(sys.argv) > 2 else None)
    out = REPO / "bench" / "results"
    (out / "demo_alternatives.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "demo_alternatives.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
