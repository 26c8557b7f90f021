"""Probe a training checkpoint of the E2E demo on the first N frozen test rows, against the alternatives on the same rows.

For when the full ``tunerail run`` cannot finish (a loaded machine): greedy answers of the checkpoint's
adapter, with the eval's prompt rendering and scorer, paired against tunerail's alternatives and the
hand-written template (``bench/demo_alternatives.py``), each fitted on the run's train + validation rows.
A mid-training checkpoint on a few rows is a lower bound on the run, not its verdict.

    python bench/demo_probe.py RUN_DIR CONFIG ADAPTER_DIR N
    # writes bench/results/demo_probe.json and .md
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(run: Path, config_path: Path, adapter: Path, n: int) -> dict[str, Any]:
    import demo_alternatives as D

    from tunerail.config import load_config
    from tunerail.eval import generate as G
    from tunerail.eval.alternatives import FitData, delex
    from tunerail.eval.alternatives.neighbours import fit_nearest_neighbour
    from tunerail.eval.inputs import load_rows as _load
    from tunerail.prompting import pick_template, prompt_for
    from tunerail.scoring import score_generation
    from tunerail.stats import mean_ci, paired_bootstrap

    config = load_config(config_path)
    test = _load(config, run / "split" / "test.jsonl")[0][:n]
    fit = _load(config, run / "split" / "train.jsonl")[0] + _load(config, run / "split" / "validation.jsonl")[0]
    t = time.perf_counter()
    lm = G.load_model(config.model.base, adapter)
    prompts = [prompt_for(lm.tokenizer, r, pick_template(config)) for r in test]
    tuned = G.generate(lm, prompts, max_new_tokens=config.eval.max_new_tokens, batch_size=16)
    seconds = time.perf_counter() - t
    data = FitData("generation", [r.prompt for r in fit], [r.completion for r in fit], [], [], [r.prompt for r in test])
    refs = [r.completion for r in test]
    systems = {
        f"checkpoint {adapter.name}": tuned,
        "delexicalised nearest neighbour (tunerail)": delex.fit_delex_neighbour(data)[0],
        "nearest training record's answer (MiniLM; tunerail)": fit_nearest_neighbour(data)[0],
        "hand-written E2E template (no data)": [D.template(delex.parse_record(r.prompt) or []) for r in test],
    }
    scores = {k: score_generation(refs, v).per_example["rougeL"] for k, v in systems.items()}
    first = next(iter(scores.values()))
    table = []
    for name, rl in scores.items():
        row: dict[str, Any] = {
            "system": name,
            "rougeL": mean_ci(rl).to_dict(),
            "values_written": round(D.values_share(data.test_prompts, systems[name]), 3),
        }
        if rl is not first:
            row["checkpoint_minus_this"] = paired_bootstrap(first, rl).to_dict()
        table.append(row)
    examples = [{"record": r.prompt, "reference": r.completion, "checkpoint": o} for r, o in zip(test[:5], tuned)]
    load = os.getloadavg()
    return {
        "run": str(run),
        "adapter": str(adapter),
        "rows": len(test),
        "generate_s": round(seconds, 1),
        "load_average": load,
        "table": table,
        "examples": examples,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# E2E demo probe: `{result['adapter']}` on the first {result['rows']} frozen test rows",
        "",
        f"Generation {result['generate_s']} s at load average {', '.join(f'{x:.1f}' for x in result['load_average'])} (2 CPUs).",
        "",
        "| system | ROUGE-L | 95 % CI | values written | checkpoint - this (95 % CI) |",
        "| --- | ---: | --- | ---: | --- |",
    ]
    for r in result["table"]:
        d = r.get("checkpoint_minus_this")
        diff = f"{d['value']:+.3f} ({d['low']:+.3f} to {d['high']:+.3f})" if d else "-"
        rl = r["rougeL"]
        lines.append(f"| {r['system']} | {rl['value']:.3f} | {rl['low']:.3f}-{rl['high']:.3f} | {r['values_written']:.3f} | {diff} |")
    lines.append("")
    lines += [f"- `{e['record']}`\n  - checkpoint: {e['checkpoint']}\n  - reference: {e['reference']}" for e in result["examples"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    result = main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
    out = REPO / "bench" / "results"
    (out / "demo_probe.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "demo_probe.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
