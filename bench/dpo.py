"""Preference tuning (train.method: dpo | orpo | kto) on the bundled SmolLM2-135M-Instruct with a planted preference.

    python bench/dpo.py --method all    # one row per method, same pairs and seed; see bench/results/dpo.md for the wall time

Pairs: Banking77 queries (examples/banking77/train.csv); both answers name the query's intent, the
chosen one closes politely, the rejected one curtly (closers drawn from four of each, seeded), as
annotators who always prefer the polite answer would vote. Whole prompts are held out
(``train.preference.validation_share``); on them the untuned and the tuned adapter are compared:
share of pairs where the model gives the chosen answer the higher log-likelihood (Wilson 95 % CI),
and the mean log-likelihood margin. The answers themselves: greedy answers to further Banking77
queries that no pair holds, before (the base model: a fresh LoRA starts as the identity) and after
each method; the share that use one of the planted polite closers, and the share that end with one,
each with a Wilson 95 % CI. Results: ``bench/results/dpo.json`` and ``dpo.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "examples" / "banking77" / "train.csv"
POLITE = ["Glad to help!", "Happy to assist.", "Thanks for asking!", "Have a great day!"]
CURT = ["Figure it out.", "Not my problem.", "Ask someone else.", "Whatever works."]
SYSTEM = "Answer the banking customer."
METHODS = ("dpo", "orpo", "kto")


def _rows() -> list[dict[str, str]]:
    with open(DATA, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def planted(n: int, seed: int = 0) -> list:
    """The first ``n`` shuffled queries as pairs: intent + polite closer (chosen) vs intent + curt closer (rejected)."""
    from tunerail.data.preference import PreferencePair

    rng = random.Random(seed)
    rows = _rows()
    rng.shuffle(rows)
    out = []
    for r in rows[:n]:
        label = r["category"].replace("_", " ")
        out.append(PreferencePair(r["text"], f"{label}. {rng.choice(POLITE)}", f"{label}. {rng.choice(CURT)}"))
    return out


def unseen_queries(pairs: list, n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (query, intent) of Banking77 queries that no pair holds, for the generated-answer check."""
    used = {p.prompt for p in pairs}
    rows = _rows()
    random.Random(seed + 1).shuffle(rows)
    return [(r["text"], r["category"].replace("_", " ")) for r in rows if r["text"] not in used][:n]


def closer_shares(answers: list[str]) -> dict[str, Any]:
    """Share of answers using / ending with a planted polite closer (and using a curt one), with Wilson 95 % CIs."""
    from tunerail.stats import wilson_interval

    n = len(answers)
    counts = {
        "uses_polite": sum(any(c.lower() in a.lower() for c in POLITE) for a in answers),
        "ends_polite": sum(a.strip().lower().endswith(tuple(c.lower() for c in POLITE)) for a in answers),
        "uses_curt": sum(any(c.lower() in a.lower() for c in CURT) for a in answers),
    }
    out: dict[str, Any] = {"answers": n}
    for key, k in counts.items():
        low, high = wilson_interval(k, n)
        out[key] = {"count": k, "share": k / n if n else None, "low": low, "high": high}
    return out


def greedy_answers(config: Any, adapter: Path | None, queries: list[tuple[str, str]], max_new_tokens: int) -> dict[str, Any]:
    """Greedy answers with the run's prompt template (the eval's prompt rendering and batched decoding), two ways.

    ``free``: the whole answer. ``after_intent``: the answer started for the model with the query's
    intent as the pairs' answers start ("card arrival. "), so only the closing is the model's: the
    pairs teach how to close, not the answer's format, which a few steps on a base model do not move.
    """
    from tunerail.eval.generate import generate, load_model
    from tunerail.prompting import pick_template, prompt_for

    lm = load_model(config.model.base, adapter)
    template = pick_template(config)
    prompts = [prompt_for(lm.tokenizer, q, template) for q, _ in queries]
    free = generate(lm, prompts, max_new_tokens=max_new_tokens, batch_size=16)
    closings = generate(lm, [p + f"{label}. " for p, (_, label) in zip(prompts, queries)], max_new_tokens=12, batch_size=16)
    return {
        "free": closer_shares(free),
        "after_intent": closer_shares(closings),
        "examples_free": free[:5],
        "examples_after_intent": closings[:5],
    }


def make_config(method: str, args: argparse.Namespace, tmp: Path) -> Any:
    from tunerail.config import TunerailConfig

    cfg = TunerailConfig.model_validate(
        {
            "task": "classification",
            "model": {"base": "bundled:smollm2", "max_seq_length": 128},
            "prompts": [{"system": SYSTEM, "template": "{prompt}"}],
            "train": {
                "method": method,
                "learning_rate": args.lr,
                "epochs": args.epochs,
                "batch_size": 8,
                "probe_steps": 0,
                "eval_steps": args.eval_steps,
            },
            "tracking": {"enabled": False},
            "store": {"path": str(tmp / "store")},
        }
    )
    cfg.train.preference.validation_share = 1 / 3
    return cfg


def run_method(method: str, args: argparse.Namespace, pairs: list, queries: list[str]) -> dict[str, Any]:
    """Train one method from a fresh LoRA on the pairs, then answer the unseen queries with its adapter."""
    from tunerail.data.preference import PairSet
    from tunerail.train.preference import train_preference

    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_config(method, args, Path(tmp))
        start = time.perf_counter()
        result = train_preference(cfg, pairs=PairSet(pairs, "bench/dpo.py planted"), out_dir=Path(tmp) / method)
        train_s = time.perf_counter() - start
        generated = greedy_answers(cfg, result.adapter_dir, queries, args.max_new_tokens)
        gen_s = time.perf_counter() - start - train_s
    return {
        "method": method,
        "learning_rate": args.lr,
        "data": result.data,
        "before": result.before,
        "after": result.after,
        "generated_after": generated,
        "steps": result.actual["steps"],
        "best_step": result.best_step,
        "stopped_reason": result.stopped_reason,
        "findings": [f.code for f in result.findings],
        "train_seconds": round(train_s, 1),
        "generate_seconds": round(gen_s, 1),
        "load_average": os.getloadavg(),
    }


def _ci(x: dict[str, Any]) -> str:
    return f"{x['share']:.3f} ({x['low']:.3f}-{x['high']:.3f})"


def markdown(out: dict[str, Any]) -> str:
    first = out["rows"][0]
    lines = [
        "# Preference tuning on a planted preference (bench/dpo.py)\n",
        f"Command: `{out['command']}` ({out['seconds']:.0f} s wall in all, 2-core CPU shared with other jobs, "
        f"load average {out['load_average'][0]:.1f} at the end).\n",
        f"SmolLM2-135M-Instruct, fresh LoRA per method, the same {first['data']['train_pairs']} train / "
        f"{first['data']['validation_pairs']} held-out pairs (seed {out['seed']}), {out['epochs']:g} epoch(s) of batch 8; "
        f"learning rate {out['learning_rate'] or 'each method default'}. Held-out preference accuracy: share of held-out pairs whose "
        "chosen answer the model finds likelier (Wilson 95 % CI); margin: mean log p(chosen) - log p(rejected) in nats.\n",
        "| method | steps | train s | accuracy before | accuracy after | margin before | margin after | chosen logp/token before -> after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in out["rows"]:
        b, a = r["before"], r["after"]
        lines.append(
            f"| {r['method']} | {r['steps']} | {r['train_seconds']:.0f} | {b['accuracy']:.3f} ({b['accuracy_low']:.3f}-{b['accuracy_high']:.3f}) "
            f"| {a['accuracy']:.3f} ({a['accuracy_low']:.3f}-{a['accuracy_high']:.3f}) | {b['margin']:.2f} | {a['margin']:.2f} "
            f"| {b['chosen_logp_per_token']:.2f} -> {a['chosen_logp_per_token']:.2f} |"
        )
    rows = [("before (base)", out["generated_before"])] + [(f"after {r['method']}", r["generated_after"]) for r in out["rows"]]
    lines += [
        "",
        f"Generated answers: greedy, to {out['generated_before']['free']['answers']} Banking77 queries that no pair holds. Free: the "
        f"whole answer ({out['max_new_tokens']} new tokens at most). After intent: the answer started for the model with the query's "
        "intent as the pairs' answers start (\"card arrival. \"), 12 new tokens: only the closing is the model's. Share that use one "
        "of the four planted polite closers, that end with one, and that use a curt closer (Wilson 95 % CI).\n",
        "| model | free: uses polite | free: uses curt | after intent: uses polite | after intent: ends polite | after intent: uses curt |",
        "|---|---|---|---|---|---|",
    ]
    for name, g in rows:
        f, c = g["free"], g["after_intent"]
        lines.append(
            f"| {name} | {_ci(f['uses_polite'])} | {_ci(f['uses_curt'])} | {_ci(c['uses_polite'])} | {_ci(c['ends_polite'])} | {_ci(c['uses_curt'])} |"
        )
    lines.append("")
    for name, g in rows:
        lines.append(f"- {name}, first closings after intent: " + " / ".join(repr(a) for a in g["examples_after_intent"][:3]))
        lines.append("  first free answers: " + " / ".join(repr(a[:90]) for a in g["examples_free"][:2]))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", choices=[*METHODS, "all"], default="dpo")
    parser.add_argument("--pairs", type=int, default=96)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=None, help="default: each method's own (tunerail.train.lint.LR_DEFAULT)")
    parser.add_argument("--eval-steps", type=int, default=None)
    parser.add_argument("--queries", type=int, default=48, help="unseen queries answered before and after")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default="dpo", help="results file stem under bench/results (another stem keeps dpo.md)")
    args = parser.parse_args()
    start = time.perf_counter()
    pairs = planted(args.pairs, args.seed)
    queries = unseen_queries(pairs, args.queries, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        generated = greedy_answers(make_config("dpo", args, Path(tmp)), None, queries, args.max_new_tokens)
    out: dict[str, Any] = {
        "command": "python bench/dpo.py " + " ".join(sys.argv[1:]),
        "model": "bundled:smollm2",
        "pairs": args.pairs,
        "seed": args.seed,
        "learning_rate": args.lr,
        "epochs": args.epochs,
        "max_new_tokens": args.max_new_tokens,
        "generated_before": generated,
        "rows": [],
    }
    results = REPO / "bench" / "results"
    for method in METHODS if args.method == "all" else (args.method,):
        out["rows"].append(run_method(method, args, pairs, queries))
        out["seconds"], out["load_average"] = round(time.perf_counter() - start, 1), os.getloadavg()
        (results / f"{args.results}.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")  # each row as it finishes
        (results / f"{args.results}.md").write_text(markdown(out), encoding="utf-8")
    print(markdown(out))


if __name__ == "__main__":
    main()
