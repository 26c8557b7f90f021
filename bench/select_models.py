"""`tunerail select` measured: bits-per-byte parity with lm-eval, the demo's select table (SmolLM2,
Gemma 3 270M and a damaged SmolLM2 copy), select's total time, and the memory estimate against a real
20-step LoRA run of the recommended model.

    python bench/select_models.py                                     # main demo: examples/wnut17 (extraction)
    python bench/select_models.py --config examples/banking77/tunerail.yaml
    python bench/select_models.py --sample-rows 40 --few-shot 2       # the sample sizes (select config)
    python bench/select_models.py --parity-only                       # re-run only part 1, merge it in

1. Parity: bits per byte of the demo data's first ``--parity-docs`` prompts (a domain JSONL) by
   ``select.probes.document_bits_per_byte`` against lm-eval's ``loglikelihood_rolling`` task metric
   ``bits_per_byte`` (a task YAML over the JSONL, ``hf`` model, fp32), for every candidate (same
   ranking?). The document is scored once, after one prefix token (lm-eval's definition). lm-eval
   0.4.x encodes each document with the tokenizer's defaults, so for a tokenizer that adds a BOS
   (Gemma's) its first window is ``prefix BOS + BOS + text`` and the document's score includes
   ``log p(<bos> | <bos>)``, a token that is not part of the document (about 26 bits per Banking77
   query for Gemma 3 270M), plus conditioning on a doubled BOS. For such tokenizers (detected, not by
   name) the reference is lm-eval with ``add_bos_token=False``; the default figure is kept with the
   part of the gap that the extra ``<bos>`` prediction explains. Needs the ``bench`` extra; without
   lm-eval the reference is lm-eval's formula on a full forward pass and the result says so.
2. select on the demo config (its task, metric, prompts, train settings; sample sizes from the
   options): candidates SmolLM2-135M, Gemma 3 270M and a damaged SmolLM2 copy (top 8 of 30 blocks
   re-initialised, normal(0, 0.02)); the damaged one must rank last on every measure. Wall time.
3. Memory: select's LoRA memory estimate for the recommended model (a fresh process's peak RSS through
   setup and the data's largest batch) against the peak RSS (``ru_maxrss``) of a separate `tunerail train`
   process running 20 LoRA steps (160 rows holding the data's 16 longest, batch 8) with the demo's train settings.


Results: ``bench/results/select_models.json`` and ``.md`` (``select_models_<example>`` for other configs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "results"
MAIN_DEMO = REPO / "examples" / "wnut17" / "tunerail.yaml"


def damaged_copy(source: str, folder: Path, top_blocks: int = 8, std: float = 0.02, seed: int = 0) -> str:
    """SmolLM2 with its top blocks re-initialised (what a broken merge or a bad checkpoint looks like)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (folder / "config.json").exists():
        model = AutoModelForCausalLM.from_pretrained(source)
        torch.manual_seed(seed)
        with torch.no_grad():
            for block in model.model.layers[-top_blocks:]:
                for _, p in block.named_parameters():
                    p.normal_(0.0, std) if p.dim() >= 2 else p.fill_(1.0)
        model.save_pretrained(folder)
        AutoTokenizer.from_pretrained(source).save_pretrained(folder)
        (folder / "README.md").write_text(
            "---\nlicense: apache-2.0\n---\n\nSmolLM2-135M with the top blocks re-initialised (bench/select_models.py).\n", encoding="utf-8"
        )
    return str(folder)


def adds_prefix_token(tokenizer) -> bool:
    """Whether the tokenizer's default encoding starts with the token lm-eval uses as the rolling prefix."""
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[0] == prefix


def lm_eval_bpb(model_path: str, jsonl: Path, work: Path, extra_args: str = "") -> float | None:
    """lm-eval's loglikelihood_rolling bits_per_byte on the JSONL (None when lm-eval is not installed)."""
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError:
        return None
    tasks = work / "tasks"
    tasks.mkdir(parents=True, exist_ok=True)
    (tasks / "tunerail_domain.yaml").write_text(
        "task: tunerail_domain\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {jsonl}\n"
        "test_split: test\noutput_type: loglikelihood_rolling\ndoc_to_text: ''\ndoc_to_target: '{{text}}'\n"
        "metric_list:\n  - metric: bits_per_byte\n    aggregation: bits_per_byte\n    higher_is_better: false\n",
        encoding="utf-8",
    )
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_path},dtype=float32{extra_args}",
        tasks=["tunerail_domain"],
        task_manager=TaskManager(include_path=str(tasks)),
        batch_size=8,
        device="cpu",
    )
    metrics = out["results"]["tunerail_domain"]
    return float(next(v for k, v in metrics.items() if k.startswith("bits_per_byte") and "stderr" not in k))


def formula_bpb(model_path: str, documents: list[str]) -> float:
    """lm-eval's formula without lm-eval: full-sequence forward from the prefix token, sum of log p, / (bytes ln 2)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    total = 0.0
    for doc in documents:
        ids = [prefix] + tok(doc, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = model(torch.tensor([ids])).logits[0, :-1].float()
        total += float(torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids[1:]).unsqueeze(-1)).sum())
    return -total / (sum(len(d.encode("utf-8")) for d in documents) * math.log(2))


def _parity(models: dict[str, str], docs: list[str], work: Path) -> tuple[dict, bool]:
    from tunerail.eval.generate import load_model
    from tunerail.select.probes import answer_bits, document_bits_per_byte

    jsonl = work / "domain.jsonl"
    jsonl.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    parity = {}
    for name, path in models.items():
        lm = load_model(path)
        ours = document_bits_per_byte(lm, docs)
        doubled = adds_prefix_token(lm.tokenizer)
        ref = lm_eval_bpb(path, jsonl, work, ",add_bos_token=False" if doubled else "")
        how = "lm-eval simple_evaluate, loglikelihood_rolling, bits_per_byte" + (", add_bos_token=False" if doubled else "")
        if ref is None:
            ref, how = formula_bpb(path, docs), "lm-eval not installed: lm-eval's formula on a full forward pass"
        row = {
            "tunerail": round(ours, 4),
            "reference": round(ref, 4),
            "relative_diff": round(abs(ours - ref) / ref, 5),
            "reference_method": how,
            "tokenizer_adds_bos": doubled,
        }
        if doubled and "lm-eval simple" in how:
            default = lm_eval_bpb(path, jsonl, work)
            prefix = lm.tokenizer.bos_token
            extra_bits, _ = answer_bits(lm, [prefix] * len(docs), [prefix] * len(docs))
            row.update(
                {
                    "reference_lm_eval_default": round(default, 4),
                    "relative_diff_vs_default": round(abs(ours - default) / default, 5),
                    "extra_bos_prediction_bits_per_byte": round(float(extra_bits.sum()) / n_bytes, 4),
                    "extra_bos_prediction_bits_per_document": round(float(extra_bits.mean()), 2),
                }
            )
        del lm
        parity[name] = row
        print(name, row, flush=True)
    same_order = sorted(parity, key=lambda k: parity[k]["tunerail"]) == sorted(parity, key=lambda k: parity[k]["reference"])
    return parity, same_order


def train_peak_rss(config_path: Path, train: Path, validation: Path, out: Path) -> dict:
    """A separate `tunerail train` process, 20 LoRA steps: its train.json (peak RSS, steps, seconds)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tunerail",
            "train",
            "--config",
            str(config_path),
            "--train",
            str(train),
            "--validation",
            str(validation),
            "--out",
            str(out),
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    trained = json.loads((out / "train.json").read_text())
    return {**trained["actual"], "wall_s": round(time.perf_counter() - start, 1)}


def _models() -> dict[str, str]:
    from tunerail.models import cache_root, resolve_model

    smol, gemma = resolve_model("bundled:smollm2"), resolve_model("bundled:gemma3")
    return {
        "bundled:smollm2": smol,
        "bundled:gemma3": gemma,
        "smollm2-damaged": damaged_copy(smol, cache_root() / "bench" / "smollm2-top8-reinit"),
    }


def _config(path: Path, args: argparse.Namespace, work: Path):
    from tunerail.config import load_config

    cfg = load_config(path)
    cfg.select.sample_rows, cfg.select.few_shot = args.sample_rows, args.few_shot
    cfg.select.probe_steps, cfg.select.bootstrap = args.probe_steps, args.bootstrap
    cfg.train.probe_steps = args.probe_steps
    cfg.tracking.enabled = False
    cfg.store.path = str(work / "store")
    return cfg


def _records(cfg):
    from tunerail.data.loaders import load_usable_records

    return load_usable_records(cfg.resolve(cfg.data.path), cfg, missing="data file not found", missing_fix="")[0]


def _result_name(config: Path) -> str:
    return "select_models" if config.resolve() == MAIN_DEMO else f"select_models_{config.resolve().parent.name}"


def main(args: argparse.Namespace) -> None:
    import shutil
    import tempfile

    from tunerail.select import select

    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(key, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    config = Path(args.config)
    name = _result_name(config)
    work = Path(tempfile.mkdtemp(prefix="bench-select-"))
    t0 = time.perf_counter()
    models = _models()
    named = {path: key for key, path in models.items()} | {k: k for k in models}
    cfg = _config(config, args, work)
    records = _records(cfg)
    docs = [r.prompt for r in records[: args.parity_docs]]

    # 1. parity (--skip-parity keeps the figures of the last run that measured them) ---------------
    saved = json.loads((OUT / f"{name}.json").read_text()) if (OUT / f"{name}.json").exists() else {}
    if args.skip_parity and "parity" in saved:
        parity, same_order, docs = saved["parity"], saved["parity_same_ranking"], docs[: saved["parity_docs"]]
    else:
        parity, same_order = _parity(models, docs, work)
    if args.parity_only:
        results = json.loads((OUT / f"{name}.json").read_text())
        results.update(parity=parity, parity_same_ranking=same_order, parity_docs=len(docs))
        _write(name, results)
        return
    command = " ".join(["python", "bench/select_models.py", *sys.argv[1:]])
    _write(
        name,
        {
            "command": command,
            "config": str(config),
            "parity_docs": len(docs),
            "parity": parity,
            "parity_same_ranking": same_order,
            "partial": "select not finished",
            "load_average": os.getloadavg(),
        },
    )

    # 2. the demo's select table + select time ------------------------------------------------------
    cfg.model.candidates = ["bundled:smollm2", "bundled:gemma3", models["smollm2-damaged"]]
    start = time.perf_counter()
    result = select(cfg, out_dir=work / "select")
    select_s = time.perf_counter() - start
    table = []
    for c in result.candidates:
        est = c.resources.get("estimate") or {}
        table.append(
            {
                "candidate": named.get(c.name, c.name),
                "params_m": round(c.params / 1e6, 1),
                "score": {k: round(v, 4) for k, v in c.score.items() if k in ("value", "low", "high")},
                "setting": c.score["setting"],
                "zero_shot": round(c.scores["zero_shot"]["value"], 4),
                "k_shot": round(c.scores["k_shot"]["value"], 4) if "k_shot" in c.scores else None,
                "bits_per_byte": {k: round(c.bits_per_byte[k], 4) for k in ("value", "low", "high")},
                "bits_per_byte_general": round(c.bits_per_byte_general or 0, 4),
                "tokens_per_word": round(c.tokenizer["tokens_per_word"], 3),
                "chars_per_token": round(c.tokenizer["chars_per_token"], 3),
                "truncated_share": round(c.tokenizer["truncated_share"], 4),
                "memory_lora_gb": round(c.resources.get("memory_lora_gb", 0), 3),
                "memory_full_gb": round(c.resources.get("memory_full_gb", 0), 3),
                "train_minutes": round(est.get("seconds", 0) / 60, 2),
                "train_cost": est.get("cost"),
                "licence": c.licence.get("spdx") or c.licence.get("raw"),
                "licence_class": c.licence["licence_class"],
                "eligible": c.eligible,
                "blocked": c.blocked,
                "recommended": c.name == result.recommended,
                "seconds": c.seconds,
            }
        )
    dmg = next(t for t in table if t["candidate"] == "smollm2-damaged")
    others = [t for t in table if t is not dmg]
    last_on = {
        "ranking": named.get(result.ranking[-1]) == "smollm2-damaged",
        "score": all(dmg["score"]["value"] <= t["score"]["value"] for t in others),
        "bits_per_byte": all(dmg["bits_per_byte"]["value"] >= t["bits_per_byte"]["value"] for t in others),
        "bits_per_byte_general": all(dmg["bits_per_byte_general"] >= t["bits_per_byte_general"] for t in others),
    }
    unname = lambda s: s.replace(models["smollm2-damaged"], "smollm2-damaged")  # noqa: E731
    results = {
        "command": command,
        "config": str(config),
        "task": result.task,
        "metric": result.metric,
        "sample": result.sample,
        "select_settings": cfg.select.model_dump(mode="json"),
        "parity_docs": len(docs),
        "parity": parity,
        "parity_same_ranking": same_order,
        "select": table,
        "recommended": named.get(result.recommended, result.recommended),
        "reason": unname(result.reason),
        "ranking": [named.get(n, n) for n in result.ranking],
        "damaged_last_on": last_on,
        "findings": [unname(f"{f.code} {f.message}") for f in result.findings],
        "baselines": result.baselines,
        "select_seconds": round(select_s, 1),
        "load_average_after_select": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    _write(name, results)  # the table is kept even if the memory run below fails

    # 3. memory estimate vs a 20-step LoRA run of the recommended model -----------------------------------
    if result.recommended and not args.skip_memory:
        rows = _raw_rows(cfg)  # the file's own columns, which the config maps
        # The estimate covers the run's largest batch (most tokens): the 20-step run's 160 rows hold the 16
        # longest rows of the data (by characters), so its own largest batch is about the data's largest.
        longest = sorted(range(len(rows)), key=lambda i: -len(json.dumps(rows[i], ensure_ascii=False)))[:16]
        train_rows = [rows[i] for i in longest] + [r for i, r in enumerate(rows) if i % 2 == 0 and i not in longest][:144]
        val_rows = [r for i, r in enumerate(rows) if i % 2 == 1 and i not in longest][:16]
        (work / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_rows), encoding="utf-8")
        (work / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in val_rows), encoding="utf-8")
        run_cfg = cfg.model_dump(mode="json")
        run_cfg["model"] = {**run_cfg["model"], "base": result.recommended, "candidates": []}
        run_cfg["train"] = {**run_cfg["train"], "probe_steps": 0, "eval_steps": 10, "epochs": 1}
        run_cfg["data"] = {**run_cfg["data"], "path": None}
        (work / "train.yaml").write_text(json.dumps(run_cfg), encoding="utf-8")
        measured = train_peak_rss(work / "train.yaml", work / "train.jsonl", work / "val.jsonl", work / "run")
        estimate_gb = result.candidate(result.recommended).resources["memory_lora_gb"]
        results["memory"] = {
            "model": results["recommended"],
            "estimate_gb": round(estimate_gb, 3),
            "measured_peak_rss_gb": round(measured["peak_rss_mb"] * 1024 * 1024 / 1e9, 3),
            "relative_error": round(estimate_gb / (measured["peak_rss_mb"] * 1024 * 1024 / 1e9) - 1, 4),
            "run": measured,
            "note": "estimate from select's probe (same train settings, its own training rows); measured: "
            "ru_maxrss of a separate `tunerail train` process, 20 steps of batch 8 on 160 rows (the 16 longest of the data among them)",
        }
    results.update(bench_seconds=round(time.perf_counter() - t0, 1), load_average_end=os.getloadavg())
    _write(name, results)
    shutil.rmtree(work, ignore_errors=True)


def _raw_rows(cfg) -> list[dict]:
    import csv

    path = Path(cfg.resolve(cfg.data.path))
    with open(path, newline="", encoding="utf-8") as handle:
        if path.suffix == ".csv":
            return list(csv.DictReader(handle))
        return [json.loads(line) for line in handle if line.strip()]


def _write(name: str, results: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (OUT / f"{name}.md").write_text(_markdown(results), encoding="utf-8")
    print(_markdown(results), flush=True)


def _markdown(r: dict) -> str:
    lines = [
        f"# bench/select_models.py on {r.get('config')}",
        "",
        f"command: `{r.get('command')}`",
        "",
        f"## Bits per byte parity ({r.get('parity_docs')} prompts of the demo data)",
        "",
        "| model | tunerail | reference | relative diff | reference method | lm-eval default (diff) | extra `<bos>` prediction |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, p in r["parity"].items():
        default = (
            f"{p['reference_lm_eval_default']:.4f} ({100 * p['relative_diff_vs_default']:.1f} %)"
            if "reference_lm_eval_default" in p
            else "same"
        )
        extra = (
            f"{p['extra_bos_prediction_bits_per_byte']:.4f} bits/byte ({p['extra_bos_prediction_bits_per_document']:.1f} bits/doc)"
            if "extra_bos_prediction_bits_per_byte" in p
            else "-"
        )
        lines.append(
            f"| {name} | {p['tunerail']:.4f} | {p['reference']:.4f} | {100 * p['relative_diff']:.3f} % | "
            f"{p['reference_method']} | {default} | {extra} |"
        )
    lines += ["", f"same ranking: {r['parity_same_ranking']}", ""]
    if "select" not in r:
        return "\n".join([*lines, f"partial: {r.get('partial')}; load average {r.get('load_average')}", ""])
    s = r["sample"]
    sel = r["select_settings"]
    lines += [
        f"## select ({r['task']}, {r['metric']}, {s['rows']} of {s['of']} rows, {s['shots']}-shot, "
        f"probe_steps {sel['probe_steps']}, bootstrap {sel['bootstrap']}): {r['select_seconds']:.0f} s",
        "",
        f"| candidate | params M | {r['metric']} [95 % CI] (setting) | 0-shot | k-shot | bits/byte [95 % CI] | general bits/byte | "
        "tok/word | chars/tok | truncated | mem LoRA GB | mem full GB | train min (1 epoch) | licence | eligible | recommended |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in r["select"]:
        sc, b = t["score"], t["bits_per_byte"]
        k = "-" if t["k_shot"] is None else f"{t['k_shot']:.3f}"
        lines.append(
            f"| {t['candidate']} | {t['params_m']} | {sc['value']:.3f} [{sc['low']:.3f}, {sc['high']:.3f}] ({t['setting']}) | "
            f"{t['zero_shot']:.3f} | {k} | {b['value']:.3f} [{b['low']:.3f}, {b['high']:.3f}] | {t['bits_per_byte_general']:.3f} | "
            f"{t['tokens_per_word']:.2f} | {t['chars_per_token']:.2f} | {100 * t['truncated_share']:.1f} % | "
            f"{t['memory_lora_gb']:.2f} | {t['memory_full_gb']:.2f} | {t['train_minutes']:.1f} | {t['licence']} ({t['licence_class']}) | "
            f"{t['eligible']} | {'**yes**' if t['recommended'] else ''} |"
        )
    lines += [
        "",
        f"recommended: **{r['recommended']}**: {r['reason']}",
        "",
        f"ranking: {' > '.join(r['ranking'])}",
        f"damaged last on: {r['damaged_last_on']}",
        "",
        "findings:",
        *[f"- {f}" for f in r["findings"]],
        "",
    ]
    m = r.get("memory")
    if m:
        lines += [
            "## Memory",
            "",
            f"{m['model']}: LoRA estimate {m['estimate_gb']:.3f} GB vs measured peak RSS "
            f"{m['measured_peak_rss_gb']:.3f} GB ({100 * m['relative_error']:+.1f} %), 20-step run {m['run'].get('seconds')} s",
            "",
        ]
    else:
        lines += ["## Memory", "", "not measured in this run", ""]
    lines += [
        f"load average after select {r.get('load_average_after_select')}, at the end {r.get('load_average_end')}; "
        f"bench total {r.get('bench_seconds')} s; {r.get('cpus')} CPUs",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(MAIN_DEMO))
    parser.add_argument("--sample-rows", type=int, default=40, help="select.sample_rows (default config: 200)")
    parser.add_argument("--few-shot", type=int, default=2, help="select.few_shot (default config: 3)")
    parser.add_argument("--probe-steps", type=int, default=2, help="select.probe_steps (default config: 3)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--parity-docs", type=int, default=40)
    parser.add_argument("--parity-only", action="store_true")
    parser.add_argument("--skip-parity", action="store_true", help="reuse the parity figures already in the results")
    parser.add_argument("--skip-memory", action="store_true")
    main(parser.parse_args())
