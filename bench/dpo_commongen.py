"""Preference tuning of the main demo (CommonGen keywords -> sentence) from its own SFT adapter.

    python bench/dpo_commongen.py --demo examples/commongen/runs/commongen-demo --work /tmp/prefdemo/cg --method dpo --method orpo --method kto

(~20 min of training per method plus ~4 min of eval on a shared 2-core CPU; a second call with other
methods reuses WORK's pairs and SFT eval and keeps the earlier methods' rows.)

The preference a CommonGen practitioner holds: a sentence that uses every given concept beats one
that leaves a concept out. Pairs come from the TRAINING split only (the frozen test rows are never
read to build or choose anything): for each training concept set, the SFT adapter writes its beam
candidates (the demo's ``eval.num_beams``); rejected = its likeliest candidate that misses a concept
(``tunerail.keywords``, word forms counted); chosen = one of the set's human sentences that uses
every concept (seeded pick). Sets where every candidate uses every concept give no pair.

Stages, each a command a user would type (all logged in the results with their wall time):
1. pairs: the file above (``WORK/pairs.jsonl``) and its counts;
2. ``tunerail train --pairs ... --adapter SFT --test split/test.jsonl`` with ``train.method`` set, the
   rest of the demo's config as is (LoRA, budget cap, early stopping on validation pairs);
3. ``tunerail eval`` on the same frozen test with the demo's decoding (4 beams + keyword cover);
4. compare with the SFT adapter's eval of the demo run: ROUGE-L with its cluster-bootstrap CI, the
   paired difference (same rows, clusters = concept sets), concept coverage (share of test sets whose
   answer uses every concept, Wilson CI), forgetting. Results: bench/results/dpo_commongen.md/json.

The demo run folder is read only: what the eval needs (config, store, split, SFT adapter) is copied into WORK.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent


def copy_demo(demo: Path, work: Path) -> Path:
    """WORK/tunerail.yaml with the demo's store and run folder beside it (the demo stays untouched)."""
    example = demo.parent.parent
    if not (work / "tunerail.yaml").exists():
        work.mkdir(parents=True, exist_ok=True)
        shutil.copy(example / "tunerail.yaml", work / "tunerail.yaml")
        shutil.copy(example / "concepts.jsonl", work / "concepts.jsonl")
        shutil.copytree(example / ".tunerail" / "store", work / ".tunerail" / "store")
        run = work / "runs" / demo.name
        for part in ("split", "train/adapter", "eval"):
            shutil.copytree(demo / part, run / part)
        shutil.copy(demo / "train" / "train.json", run / "train" / "train.json")
    return work / "runs" / demo.name


def build_pairs(run: Path, config_path: Path, out: Path, seed: int) -> dict[str, Any]:
    """Pairs from the training split: a human sentence using every concept vs the SFT model's likeliest miss."""
    from tunerail.config import load_config
    from tunerail.data.loaders import load_records
    from tunerail.eval.generate import generate_candidates, load_model
    from tunerail.keywords import keyword_prompt, uses_every_keyword
    from tunerail.prompting import pick_template, prompt_for

    config = load_config(config_path)
    records, _, _ = load_records(run / "split" / "train.jsonl", config.data.format, config.data.columns, config.data.group_column)
    sets: dict[str, list[str]] = {}
    for r in records:
        sets.setdefault(r.prompt, []).append(r.completion)
    prompts = sorted(sets)
    lm = load_model(config.model.base, run / "train" / "adapter")
    template = pick_template(config)
    start = time.perf_counter()
    rendered = [prompt_for(lm.tokenizer, p, template) for p in prompts]
    candidates = generate_candidates(
        lm, rendered, max_new_tokens=config.eval.max_new_tokens, batch_size=config.eval.batch_size, num_beams=config.eval.num_beams
    )
    seconds = time.perf_counter() - start
    rng = random.Random(seed)
    pairs, counts = [], {"sets": len(prompts), "top_beam_misses": 0, "all_beams_miss": 0, "no_miss": 0, "no_full_reference": 0}
    for prompt, cands in zip(prompts, candidates):
        keywords = keyword_prompt(prompt) or []
        misses = [c for c in cands if not uses_every_keyword(keywords, c)]
        counts["top_beam_misses"] += bool(cands) and not uses_every_keyword(keywords, cands[0])
        counts["all_beams_miss"] += len(misses) == len(cands)
        full = [s for s in sets[prompt] if uses_every_keyword(keywords, s)]
        if not misses:
            counts["no_miss"] += 1
        elif not full:
            counts["no_full_reference"] += 1
        else:
            pairs.append({"prompt": prompt, "chosen": rng.choice(full), "rejected": misses[0]})
    out.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")
    return {"pairs": len(pairs), "counts": counts, "generate_seconds": round(seconds, 1), "file": str(out)}


def method_config(config_path: Path, method: str, lr: float, eval_steps: int, out: Path) -> Path:
    """The demo's config with ``train.method`` (and its learning rate) set; everything else as the demo has it."""
    cfg = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    cfg["train"].update({"method": method, "learning_rate": lr, "eval_steps": eval_steps})
    cfg["train"].pop("replay_ratio", None)  # SFT-only: replays base-model answers among the training rows
    out.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return out


def timed(command: list[str], log: Path) -> dict[str, Any]:
    """Run one CLI command (output to ``log``); its exit code and wall time."""
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        rc = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False).returncode
    shown = " ".join(c if " " not in c else repr(c) for c in command).replace(sys.executable, "python")
    return {"command": shown, "exit_code": rc, "seconds": round(time.perf_counter() - start, 1), "log": str(log)}


def _items(eval_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (eval_dir / "review_items.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]


def compare(sft_eval: Path, new_eval: Path) -> dict[str, Any]:
    """ROUGE-L of both adapters on the same frozen rows, the paired difference, concept coverage, forgetting."""
    from tunerail.keywords import keyword_prompt, uses_every_keyword
    from tunerail.metrics import rouge_scores
    from tunerail.stats import bootstrap_ci, mcnemar, paired_bootstrap, wilson_interval

    old, new = _items(sft_eval), _items(new_eval)
    if [(o["input"], o["reference"]) for o in old] != [(n["input"], n["reference"]) for n in new]:
        raise SystemExit("the two evals did not score the same frozen rows")
    refs, groups = [o["reference"] for o in old], [o["input"] for o in old]
    out: dict[str, Any] = {"rows": len(old), "sets": len(set(groups))}
    scores, full_sets = {}, {}
    for name, items in (("sft", old), ("tuned", new)):
        scores[name] = rouge_scores([i["outputs"]["tuned"] for i in items], refs)["rougeL"]
        out[f"rougeL_{name}"] = bootstrap_ci(scores[name], groups=groups).to_dict()
        for decoding in ("tuned", "tuned_free"):  # keyword cover (the verdict's answer) and the likeliest beam
            answers = {i["input"]: i["outputs"].get(decoding) for i in items}
            full_sets[name, decoding] = [uses_every_keyword(keyword_prompt(p) or [], a or "") for p, a in sorted(answers.items())]
            full = sum(full_sets[name, decoding])
            low, high = wilson_interval(full, len(answers))
            out[f"coverage_{name}_{decoding}"] = {
                "sets": len(answers),
                "every_concept": full,
                "share": full / len(answers),
                "low": low,
                "high": high,
            }
    for decoding in ("tuned", "tuned_free"):  # the same test sets, paired: which sets gained or lost full coverage
        out[f"coverage_change_{decoding}"] = mcnemar(full_sets["tuned", decoding], full_sets["sft", decoding])
    out["rougeL_difference"] = paired_bootstrap(scores["tuned"], scores["sft"], groups=groups).to_dict()
    changed = sum(o["outputs"]["tuned"] != n["outputs"]["tuned"] for o, n in zip(old, new))
    out["answers_changed"] = changed
    for name, folder in (("sft", sft_eval), ("tuned", new_eval)):
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        out[f"report_{name}"] = {k: report.get(k) for k in ("verdict", "forgetting", "improvement", "timings")}
    return out


def _ci(x: dict[str, Any], digits: int = 3) -> str:
    value, low, high = (x.get(k) for k in ("value", "low", "high")) if "value" in x else (x["share"], x["low"], x["high"])
    return f"{value:.{digits}f} ({low:.{digits}f} to {high:.{digits}f})"


def markdown(res: dict[str, Any]) -> str:
    p = res["pairs"]
    c = p["counts"]
    lines = [
        "# Preference tuning of the main demo (bench/dpo_commongen.py)\n",
        f"Demo run: {res['demo']} (SFT adapter, READY). Pairs from its training split only: {c['sets']} concept sets answered by the "
        f"SFT adapter with {res['num_beams']} beams ({p['generate_seconds']:.0f} s); its likeliest beam leaves out a concept on "
        f"{c['top_beam_misses']} sets, every beam does on {c['all_beams_miss']}; {c['no_miss']} sets have no missing-concept beam, "
        f"{c['no_full_reference']} no human sentence using every concept: {p['pairs']} pairs (chosen = a human sentence using every "
        "concept, rejected = the SFT model's likeliest beam that misses one).\n",
        f"Pairs command: `{res['pairs_command']}`. Frozen test: {res.get('rows', '?')} rows, {res.get('sets', '?')} concept sets, "
        "decoded as the demo (4 beams, the beam using the most concepts answers).\n",
        "Training: the demo's config with `train.method` and `train.learning_rate` set (chosen before any run: one epoch of "
        "~23 steps at the dpo default 5e-6 would barely move a LoRA; 5e-5 is inside the lint's range), `eval_steps: 8`; the rest "
        "as the demo (LoRA from the SFT adapter, which is also the reference of dpo/kto; batch 8, one epoch, patience 3, budget "
        "cap 0.25 h) and the method defaults (beta 0.1, 20 % of the prompts held out for early stopping on the reward margin). "
        "Nothing was chosen on the frozen test rows. Wall times on the shared 2-core CPU (load 4-6 from other jobs).\n",
        "| adapter | learning rate | train steps (best) | train command s | eval command s | ROUGE-L (95 % CI) | paired difference vs SFT (95 % CI) "
        "| every concept used (answer) | every concept used (likeliest beam) | forgetting (worst relative change) | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    done = [m["compare"] for m in res["methods"].values() if m.get("compare")]
    if done:
        cmp_, rep = done[0], done[0]["report_sft"]
        lines.append(
            f"| sft (demo) | | | | {res['sft_eval']['seconds']:.0f} | {_ci(cmp_['rougeL_sft'])} | | {_ci(cmp_['coverage_sft_tuned'])} "
            f"| {_ci(cmp_['coverage_sft_tuned_free'])} | {rep['forgetting'].get('worst')} | {rep['verdict']} |"
        )
    for name, m in res["methods"].items():
        cmp_ = m.get("compare")
        if not cmp_:
            lines.append(f"| {name} | {m.get('learning_rate')} | not finished | | | | | | | | |")
            continue
        t, rep = m["train_result"], cmp_["report_tuned"]
        lines.append(
            f"| {name} | {m['learning_rate']:g} | {t['actual']['steps']} ({t['best_step']}) | {m['train']['seconds']:.0f} | {m['eval']['seconds']:.0f} "
            f"| {_ci(cmp_['rougeL_tuned'])} | {_ci(cmp_['rougeL_difference'])} | {_ci(cmp_['coverage_tuned_tuned'])} "
            f"| {_ci(cmp_['coverage_tuned_tuned_free'])} | {rep['forgetting'].get('worst')} | {rep['verdict']} |"
        )
    lines.append("")
    for name, m in res["methods"].items():
        if "train_result" in m:
            t = m["train_result"]
            lines.append(
                f"- {name}: held-out validation pairs {t['data']['validation_pairs']} (train {t['data']['train_pairs']}): preference accuracy "
                f"{t['before']['accuracy']:.3f} -> {t['after']['accuracy']:.3f}, margin {t['before']['margin']:.2f} -> "
                f"{t['after']['margin']:.2f} nats, chosen log-likelihood per token {t['before']['chosen_logp_per_token']:.2f} -> "
                f"{t['after']['chosen_logp_per_token']:.2f}; stopped: {t['stopped_reason']}; answers changed on "
                f"{m.get('compare', {}).get('answers_changed', '?')} test rows."
            )
        for decoding, label in (("tuned", "answer"), ("tuned_free", "likeliest beam")):
            change = m.get("compare", {}).get(f"coverage_change_{decoding}")
            if change:
                lines.append(
                    f"  - test sets whose {label} uses every concept: {change['tuned_only_correct']} gained, "
                    f"{change['base_only_correct']} lost vs SFT (exact McNemar p = {change['p_value']:.3f})"
                )
        for stage in ("train", "eval"):
            if stage in m:
                lines.append(f"  - `{m[stage]['command']}` (exit {m[stage]['exit_code']}, {m[stage]['seconds']:.0f} s)")
    lines.append(f"  - SFT re-scored with the same code: `{res['sft_eval']['command']}` ({res['sft_eval']['seconds']:.0f} s)")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--demo", type=Path, default=REPO / "examples" / "commongen" / "runs" / "commongen-demo")
    parser.add_argument("--work", type=Path, default=Path("/tmp/prefdemo/cg"))
    parser.add_argument("--method", action="append", choices=["dpo", "orpo", "kto"], help="repeatable; default dpo")
    parser.add_argument("--lr", type=float, default=5e-5, help="set before any run, not tuned on the test rows")
    parser.add_argument("--eval-steps", type=int, default=8)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "tunerail"]
    run = copy_demo(args.demo.resolve(), args.work)
    config = args.work / "tunerail.yaml"
    out_json = REPO / "bench" / "results" / "dpo_commongen.json"
    res: dict[str, Any] = json.loads(out_json.read_text()) if out_json.exists() else {"methods": {}}
    res.update({"demo": str(args.demo), "num_beams": yaml.safe_load(config.read_text())["eval"]["num_beams"]})
    pairs = args.work / "pairs.jsonl"
    if not pairs.exists():
        res["pairs"] = build_pairs(run, config, pairs, args.seed)
        res["pairs_command"] = " ".join(["python bench/dpo_commongen.py", *sys.argv[1:]])
    test = run / "split" / "test.jsonl"
    sft_eval = args.work / "sft_eval"
    if not (sft_eval / "review_items.jsonl").exists():
        res["sft_eval"] = timed(
            [*cli, "eval", "-c", str(config), "--test", str(test), "--adapter", str(run / "train" / "adapter"), "--out", str(sft_eval)],
            args.work / "sft_eval.log",
        )
    for method in args.method or ["dpo"]:
        folder = args.work / method
        m: dict[str, Any] = {"learning_rate": args.lr}
        res["methods"][method] = m
        cfg = method_config(config, method, args.lr, args.eval_steps, args.work / f"tunerail_{method}.yaml")
        train_cmd = [
            *cli,
            "train",
            "-c",
            str(cfg),
            "--pairs",
            str(pairs),
            "--adapter",
            str(run / "train" / "adapter"),
            "--test",
            str(test),
            "--out",
            str(folder),
        ]
        m["train"] = timed(train_cmd, args.work / f"{method}_train.log")
        if m["train"]["exit_code"] != 0:
            break
        m["train_result"] = json.loads((folder / "train.json").read_text(encoding="utf-8"))
        m["train_result"].pop("history", None)
        eval_cmd = [
            *cli,
            "eval",
            "-c",
            str(config),
            "--test",
            str(test),
            "--adapter",
            str(folder / "adapter"),
            "--out",
            str(folder / "eval"),
        ]
        m["eval"] = timed(eval_cmd, args.work / f"{method}_eval.log")
        m["compare"] = compare(sft_eval, folder / "eval")
        res.update({"rows": m["compare"]["rows"], "sets": m["compare"]["sets"]})
        out_json.write_text(json.dumps(res, indent=2, default=str) + "\n", encoding="utf-8")
        (out_json.parent / "dpo_commongen.md").write_text(markdown(res), encoding="utf-8")
    out_json.write_text(json.dumps(res, indent=2, default=str) + "\n", encoding="utf-8")
    print(markdown(res))


if __name__ == "__main__":
    main()
