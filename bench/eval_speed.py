"""Evaluation cost on this machine: SmolLM2-135M-Instruct, Banking77 (20 intents), CPU.

Measures seconds per example for
- greedy generation (left padding, KV cache, max_new_tokens = longest label + 3) at two batch sizes,
- label ranking by log-likelihood with the shared-prefix KV cache (``score_choices``),
- label ranking by scoring every (prompt, label) sequence in full (``score_answers``), on fewer rows,
and the base model's zero-shot accuracy both ways, plus the forgetting suite's wall time.

Data: the 20 intents of examples/banking77, 5 rows each from ../shared/data/banking77/test.csv
(100 rows). Usage: python bench/eval_speed.py [--rows-per-intent 5] [--threads 2]
Writes bench/results/eval_speed.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TUNERAIL_SHARED_DATA", ROOT.parent / "shared" / "data"))


def load_rows(per_intent: int) -> list[dict]:
    with (ROOT / "examples/banking77/train.csv").open(newline="", encoding="utf-8") as handle:
        intents = sorted({r["category"] for r in csv.DictReader(handle)})
    by = defaultdict(list)
    with (SHARED / "banking77/test.csv").open(newline="", encoding="utf-8") as handle:
        for r in csv.DictReader(handle):
            if r["category"] in intents and len(by[r["category"]]) < per_intent:
                by[r["category"]].append(r)
    return [r for lab in intents for r in by[lab]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows-per-intent", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16])
    args = ap.parse_args()
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from tunerail.config import PromptTemplate
    from tunerail.eval.forgetting import run_suite
    from tunerail.eval.generate import generate, load_model, rank_labels, score_answers
    from tunerail.metrics import match_label
    from tunerail.prompting import prompt_for

    rows = load_rows(args.rows_per_intent)
    labels = sorted({r["category"] for r in rows})
    lm = load_model("bundled:smollm2")
    template = PromptTemplate(system="Classify the customer's banking query. Answer with the intent label only.")
    prompts = [prompt_for(lm.tokenizer, r["text"], template) for r in rows]
    gold = [r["category"] for r in rows]
    max_new = max(len(lm.tokenizer(lab, add_special_tokens=False)["input_ids"]) for lab in labels) + 3
    results: dict = {
        "rows": len(rows),
        "labels": len(labels),
        "max_new_tokens": max_new,
        "threads": args.threads,
        "load_average_start": os.getloadavg(),
        "machine": platform.processor() or platform.machine(),
    }
    table = []
    print(f"{'method':<26}{'batch':>6}{'rows':>6}{'s/example':>11}{'accuracy':>10}", flush=True)

    def record(*row):
        table.append(row)
        m, bs, n_rows, spe, acc = row
        print(f"{m:<26}{bs:>6}{n_rows:>6}{spe:>11.3f}{acc:>10.3f}", flush=True)

    for bs in args.batch_sizes:
        t = time.perf_counter()
        outs = generate(lm, prompts, max_new_tokens=max_new, batch_size=bs)
        sec = time.perf_counter() - t
        acc = float(np.mean([match_label(o, labels) == g for o, g in zip(outs, gold)]))
        record("generation", bs, len(rows), sec / len(rows), acc)

    t = time.perf_counter()
    ranked = rank_labels(lm, prompts, labels, batch_size=16)
    sec = time.perf_counter() - t
    record("ranking, shared prefix", 16, len(rows), sec / len(rows), float(np.mean([p == g for p, g in zip(ranked, gold)])))

    few = prompts[:20]
    t = time.perf_counter()
    lp, n = score_answers(lm, [p for p in few for _ in labels], labels * len(few), batch_size=16)
    sec = time.perf_counter() - t
    picked = [labels[j] for j in lp.reshape(len(few), len(labels)).argmax(1)]
    record("ranking, full sequences", 16, len(few), sec / len(few), float(np.mean([p == g for p, g in zip(picked, gold[:20])])))

    t = time.perf_counter()
    suite = run_suite(lm, batch_size=16)
    results["forgetting_suite_s"] = round(time.perf_counter() - t, 2)
    results["forgetting_base"] = {"answer_nll": float(suite.answer_nll.mean()), "mc_accuracy": float(suite.mc_correct.mean())}
    results["load_average_end"] = os.getloadavg()
    results["table"] = [dict(zip(("method", "batch", "rows", "s_per_example", "accuracy"), row)) for row in table]

    print(f"forgetting suite (40 rows x 4 choices, one model): {results['forgetting_suite_s']} s")
    print(f"load average start/end: {results['load_average_start']} / {results['load_average_end']}")
    out = ROOT / "bench/results/eval_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
