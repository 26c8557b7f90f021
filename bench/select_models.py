"""`tunerail select` measured: bits-per-byte parity with lm-eval, the ranking of three candidates,
select's total time, and the memory estimate against a real 20-step LoRA run.

    python bench/select_models.py            # ~15-25 minutes on 2 shared CPU cores (Gemma's first conversion: +2 min)

1. Parity: bits per byte of 40 Banking77 queries (a domain JSONL) by ``select.probes.document_bits_per_byte``
   against lm-eval's ``loglikelihood_rolling`` task metric ``bits_per_byte`` (a task YAML over the
   JSONL, ``hf`` model, fp32), for SmolLM2-135M and the other candidates (same ranking?). Needs the
   ``bench`` extra (``pip install -e .[bench]``); without lm-eval the reference is computed by
   lm-eval's formula (sum of log-likelihoods / (bytes x ln 2)) and the result says so.
2. Ranking on the Banking77 example (8 intents, 60 sampled rows, 2-shot): SmolLM2-135M, Gemma 3
   270M and a damaged SmolLM2 copy (top 8 of 30 blocks re-initialised, normal(0, 0.02)): the damaged
   one must rank last on every measure. select's wall time is recorded.
3. Memory: select's LoRA memory estimate for SmolLM2 against the peak RSS (``ru_maxrss``) of a
   separate `tunerail train` process running 20 LoRA steps with the same train settings.

Results: ``bench/results/select.json`` and ``select.md``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO / "examples" / "banking77" / "train.csv"
OUT = REPO / "bench" / "results"
SYSTEM = "Classify the customer's banking query. Answer with the intent label only."
TRAIN = {"batch_size": 8, "epochs": 1, "learning_rate": 2e-4, "seed": 13}


def _rows(labels: int = 8) -> list[dict]:
    with open(DATA, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    keep = sorted({r["category"] for r in rows})[:labels]
    return [{"text": r["text"], "label": r["category"]} for r in rows if r["category"] in keep]


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
        (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n\nSmolLM2-135M with the top blocks "
                                          "re-initialised (bench/select_models.py).\n", encoding="utf-8")
    return str(folder)


def lm_eval_bpb(model_path: str, jsonl: Path, work: Path, extra_args: str = "") -> float | None:
    """lm-eval's loglikelihood_rolling bits_per_byte on the JSONL (None when lm-eval is not installed).

    ``extra_args`` are appended to ``model_args``. By default lm-eval tokenises each document with the
    tokenizer's special tokens: Gemma's adds a BOS, so every document is scored as BOS (prefix) + BOS +
    text, one extra, very unlikely prediction per document (SmolLM2's tokenizer adds none);
    ``add_bos_token=False`` scores exactly the text after the prefix token, as tunerail does.
    """
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
        encoding="utf-8")
    out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={model_path},dtype=float32{extra_args}",
                                  tasks=["tunerail_domain"], task_manager=TaskManager(include_path=str(tasks)),
                                  batch_size=8, device="cpu")
    metrics = out["results"]["tunerail_domain"]
    return float(next(v for k, v in metrics.items() if k.startswith("bits_per_byte") and "stderr" not in k))


def formula_bpb(model_path: str, documents: list[str]) -> float:
    """lm-eval's formula without lm-eval: full-sequence forward from the BOS token, sum of log p, / (bytes ln 2)."""
    import math

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


def _parity(models: dict[str, str], rows: list[dict], work: Path, document_bits_per_byte, load_model) -> tuple[dict, bool]:
    docs = [r["text"] for r in rows[::3][:40]]
    jsonl = work / "domain.jsonl"
    jsonl.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    parity = {}
    for name, path in models.items():
        ours = document_bits_per_byte(load_model(path), docs)
        ref = lm_eval_bpb(path, jsonl, work)
        how = "lm-eval simple_evaluate, loglikelihood_rolling, bits_per_byte"
        if ref is None:
            ref, how = formula_bpb(path, docs), "lm-eval not installed: lm-eval's formula on a full forward pass"
        parity[name] = {"tunerail": round(ours, 4), "reference": round(ref, 4),
                        "relative_diff": round(abs(ours - ref) / ref, 5), "reference_method": how}
        if "gemma" in name and "lm-eval simple" in how:
            plain = lm_eval_bpb(path, jsonl, work, ",add_bos_token=False")
            parity[name].update({"reference_default_add_bos": parity[name]["reference"], "reference": round(plain, 4),
                                 "relative_diff": round(abs(ours - plain) / plain, 5),
                                 "reference_method": how + " with add_bos_token=False (by default Gemma's tokenizer "
                                                           "adds a second BOS to every document; that figure is kept too)"})
        print(name, parity[name], flush=True)
    same_order = sorted(parity, key=lambda k: parity[k]["tunerail"]) == sorted(parity, key=lambda k: parity[k]["reference"])
    return parity, same_order


def train_peak_rss(config_path: Path, train: Path, validation: Path, out: Path) -> dict:
    """A separate `tunerail train` process, 20 LoRA steps: its train.json (peak RSS, steps, seconds)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tunerail", "train", "--config", str(config_path), "--train", str(train),
                    "--validation", str(validation), "--out", str(out)], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trained = json.loads((out / "train.json").read_text())
    return {**trained["actual"], "wall_s": round(time.perf_counter() - start, 1)}


def parity_only() -> None:
    """Re-run only the parity part and merge it into an existing results file (``--parity-only``)."""
    import tempfile

    from tunerail.eval.generate import load_model
    from tunerail.models import cache_root, resolve_model
    from tunerail.select.probes import document_bits_per_byte

    work = Path(tempfile.mkdtemp(prefix="bench-select-"))
    smol, gemma = resolve_model("bundled:smollm2"), resolve_model("bundled:gemma3")
    models = {"bundled:smollm2": smol, "bundled:gemma3": gemma,
              "smollm2-damaged": damaged_copy(smol, cache_root() / "bench" / "smollm2-top8-reinit")}
    results = json.loads((OUT / "select.json").read_text())
    results["parity"], results["parity_same_ranking"] = _parity(models, _rows(), work, document_bits_per_byte, load_model)
    (OUT / "select.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (OUT / "select.md").write_text(_markdown(results), encoding="utf-8")
    print(_markdown(results))


def main() -> None:
    import shutil
    import tempfile

    from tunerail.config import TunerailConfig
    from tunerail.eval.generate import load_model
    from tunerail.models import cache_root, resolve_model
    from tunerail.select import select
    from tunerail.select.probes import document_bits_per_byte

    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(key, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    work = Path(tempfile.mkdtemp(prefix="bench-select-"))
    t0 = time.perf_counter()
    smol, gemma = resolve_model("bundled:smollm2"), resolve_model("bundled:gemma3")
    damaged = damaged_copy(smol, cache_root() / "bench" / "smollm2-top8-reinit")
    models = {"bundled:smollm2": smol, "bundled:gemma3": gemma, "smollm2-damaged": damaged}
    rows = _rows()

    # 1. parity -----------------------------------------------------------------------------------
    parity, same_order = _parity(models, rows, work, document_bits_per_byte, load_model)

    # 2. ranking + select time ------------------------------------------------------------------------
    cfg = TunerailConfig.model_validate({
        "task": "classification", "project": "bench-select",
        "data": {"format": "text_label", "columns": {"text": "text", "label": "label"}},
        "model": {"base": smol, "candidates": [damaged, "bundled:gemma3", "bundled:smollm2"], "max_seq_length": 128},
        "prompts": [{"system": SYSTEM, "template": "{prompt}"}],
        "train": {**TRAIN, "probe_steps": 2}, "tracking": {"enabled": False},
        "select": {"sample_rows": 60, "few_shot": 2, "probe_steps": 2, "bootstrap": 1000},
        "store": {"path": str(work / "store")}})
    start = time.perf_counter()
    result = select(cfg, data=rows, out_dir=work / "select")
    select_s = time.perf_counter() - start
    table = []
    for c in result.candidates:
        table.append({"candidate": c.name if c.name != damaged else "smollm2-damaged", "params_m": round(c.params / 1e6, 1),
                      "score": {k: round(v, 4) for k, v in c.score.items() if k in ("value", "low", "high")},
                      "setting": c.score["setting"], "zero_shot": round(c.scores["zero_shot"]["value"], 4),
                      "k_shot": round(c.scores.get("k_shot", {}).get("value", float("nan")), 4),
                      "bits_per_byte": round(c.bits_per_byte["value"], 4),
                      "bits_per_byte_general": round(c.bits_per_byte_general or 0, 4),
                      "tokens_per_word": round(c.tokenizer["tokens_per_word"], 3),
                      "chars_per_token": round(c.tokenizer["chars_per_token"], 3),
                      "truncated_share": round(c.tokenizer["truncated_share"], 4),
                      "memory_lora_gb": round(c.resources.get("memory_lora_gb", 0), 3),
                      "memory_full_gb": round(c.resources.get("memory_full_gb", 0), 3),
                      "train_minutes": round((c.resources.get("estimate") or {}).get("seconds", 0) / 60, 2),
                      "licence": c.licence.get("spdx") or c.licence.get("raw"), "licence_class": c.licence["licence_class"],
                      "eligible": c.eligible, "seconds": c.seconds})
    named = lambda n: "smollm2-damaged" if n == damaged else n  # noqa: E731
    dmg = next(t for t in table if t["candidate"] == "smollm2-damaged")
    others = [t for t in table if t is not dmg]
    last_on = {"ranking": named(result.ranking[-1]) == "smollm2-damaged",
               "score": all(dmg["score"]["value"] <= t["score"]["value"] for t in others),
               "bits_per_byte": all(dmg["bits_per_byte"] >= t["bits_per_byte"] for t in others),
               "bits_per_byte_general": all(dmg["bits_per_byte_general"] >= t["bits_per_byte_general"] for t in others)}

    # 3. memory estimate vs a 20-step LoRA run ----------------------------------------------------------
    every = _rows(labels=77)  # 8 intents have only ~156 rows: the 20-step run takes its 176 rows from all intents
    train_rows, val_rows = every[::8][:160], every[1::8][:16]
    (work / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_rows), encoding="utf-8")
    (work / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in val_rows), encoding="utf-8")
    run_cfg = cfg.model_dump(mode="json")
    run_cfg["model"] = {"base": "bundled:smollm2", "max_seq_length": 128}
    run_cfg["train"] = {**run_cfg["train"], "probe_steps": 0, "eval_steps": 10}
    (work / "train.yaml").write_text(json.dumps(run_cfg), encoding="utf-8")
    measured = train_peak_rss(work / "train.yaml", work / "train.jsonl", work / "val.jsonl", work / "run")
    estimate_gb = result.candidate("bundled:smollm2").resources["memory_lora_gb"]
    memory = {"estimate_gb": round(estimate_gb, 3), "measured_peak_rss_gb": round(measured["peak_rss_mb"] / 1024, 3),
              "relative_error": round(estimate_gb / (measured["peak_rss_mb"] / 1024) - 1, 4), "run": measured,
              "note": "estimate from select's probe (same train settings, its own training rows); measured: ru_maxrss of "
                      "a separate `tunerail train` process, 20 steps of batch 8"}

    results = {"parity": parity, "parity_same_ranking": same_order, "select": table,
               "recommended": named(result.recommended), "reason": result.reason.replace(damaged, "smollm2-damaged"),
               "ranking": [named(n) for n in result.ranking], "damaged_last_on": last_on,
               "findings": [f"{f.code} {f.message}".replace(damaged, "smollm2-damaged") for f in result.findings],
               "select_seconds": round(select_s, 1), "memory": memory, "bench_seconds": round(time.perf_counter() - t0, 1),
               "load_average": os.getloadavg(), "cpus": os.cpu_count()}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "select.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (OUT / "select.md").write_text(_markdown(results), encoding="utf-8")
    print(_markdown(results))
    shutil.rmtree(work, ignore_errors=True)


def _markdown(r: dict) -> str:
    lines = ["# bench/select_models.py", "", "## Bits per byte parity (40 Banking77 queries)", "",
             "| model | tunerail | reference | relative diff | reference |", "|---|---|---|---|---|"]
    for name, p in r["parity"].items():
        lines.append(f"| {name} | {p['tunerail']:.4f} | {p['reference']:.4f} | {100 * p['relative_diff']:.3f} % | {p['reference_method']} |")
    lines += ["", f"same ranking: {r['parity_same_ranking']}", "",
              f"## select on Banking77 (8 intents, 60 rows, 2-shot): {r['select_seconds']:.0f} s", "",
              "| candidate | params M | accuracy [95 % CI] (setting) | 0-shot | 2-shot | bits/byte | general bits/byte | tok/word | chars/tok | truncated | mem LoRA GB | mem full GB | train min | licence | eligible |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in r["select"]:
        s = t["score"]
        lines.append(f"| {t['candidate']} | {t['params_m']} | {s['value']:.3f} [{s['low']:.3f}, {s['high']:.3f}] ({t['setting']}) | "
                     f"{t['zero_shot']:.3f} | {t['k_shot']:.3f} | {t['bits_per_byte']:.3f} | {t['bits_per_byte_general']:.3f} | "
                     f"{t['tokens_per_word']:.2f} | {t['chars_per_token']:.2f} | {100 * t['truncated_share']:.1f} % | "
                     f"{t['memory_lora_gb']:.2f} | {t['memory_full_gb']:.2f} | {t['train_minutes']:.1f} | {t['licence']} ({t['licence_class']}) | {t['eligible']} |")
    m = r["memory"]
    lines += ["", f"recommended: **{r['recommended']}**: {r['reason']}", "", f"ranking: {' > '.join(r['ranking'])}",
              f"damaged last on: {r['damaged_last_on']}", "", "findings:", *[f"- {f}" for f in r["findings"]], "",
              "## Memory", "", f"LoRA estimate {m['estimate_gb']:.3f} GB vs measured peak RSS {m['measured_peak_rss_gb']:.3f} GB "
              f"({100 * m['relative_error']:+.1f} %), 20-step run {m['run'].get('seconds')} s", "",
              f"bench total {r['bench_seconds']:.0f} s, load average {r['load_average']}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    parity_only() if "--parity-only" in sys.argv else main()
