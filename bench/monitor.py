"""Drift detection on CLINC150 out-of-scope mixes, tunerail monitor vs Evidently's defaults; serve speed.

    python bench/monitor.py                 # drift part ~10-15 min on 2 shared CPU cores
    python bench/monitor.py --serve-only    # only the serve latency part (SmolLM2, ~4 min)

Drift: reference = 1,000 in-scope CLINC150 training prompts (a new random draw per seed);
windows of 200 and 500 prompts with 0, 5, 10 or 20 % out-of-scope prompts (``oos_test`` +
``oos_val`` + ``oos_train``), the in-scope rows drawn from the *other* training prompts, so a
0 % window is exchangeable with the reference (a true no-drift null); with ``--cells all`` also
0 % windows from the test split (collected separately: not exactly the training distribution).
20 seeds each. For every window, in the same run and on the same MiniLM embeddings:

- tunerail: ``tunerail.monitor.drift`` exactly as ``tunerail monitor`` runs it on one window
  without a test split (MMD, domain classifier, token length, language, out-of-scope share with
  its permutation p-value), Bonferroni over the tests at family-wise alpha 0.05; detection = any
  test significant. Output tests need model answers and are not part of this input-only benchmark.
- Evidently's default text-drift test: the stat test ``ColumnDriftMetric`` picks for a text column
  (``_get_default_stattest``: ``perc_text_content_drift`` for a reference of <= 1,000 rows, a TF-IDF
  domain classifier against a random-classifier 95th percentile).
- Evidently's default embedding drift: ``EmbeddingsDriftMetric``'s default, ``model(bootstrap=
  reference rows < 1000)`` (an SGD domain classifier; AUC > 0.55 at 1,000 rows).
Evidently's ``Report`` wrapper took 138 s per window here (it profiles all 384 embedding columns),
so the bench calls the same functions the two metrics call. Evidently 0.7's legacy modules
import ``pandas.core.dtypes.common.infer_dtype_from_object``, removed in pandas 3; the bench
defines a stub for it (used only by data-integrity tests, never by the drift code).

Serve: a demo run folder (the Banking77 config, bundled SmolLM2-135M-Instruct + a fresh LoRA r=8
adapter) loaded by ``tunerail.serve.build_state`` exactly as ``tunerail serve`` loads it (adapter
merged, traffic log with fsync), on loopback, 32-token greedy answers to Banking77 test queries, 1 and 4 concurrent
clients (official ``openai`` client): latency p50/p95 and generated tokens/s, for ``serve.max_batch_size`` 1 (one
request at a time) and 8 (concurrent requests batched), side by side in the same run on the same loaded model.
Results: ``bench/results/monitor.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
_SHARED = [Path(os.environ["TUNERAIL_SHARED_DATA"])] if "TUNERAIL_SHARED_DATA" in os.environ else []
CLINC = next(
    (
        p / "clinc150" / "data_full.json"
        for p in _SHARED + [REPO.parent / "shared" / "data", REPO.parent.parent / "shared" / "data"]
        if (p / "clinc150" / "data_full.json").exists()
    ),
    REPO.parent / "shared" / "data" / "clinc150" / "data_full.json",
)
OUT = REPO / "bench" / "results"
SIZES = (200, 500)
MIXES = (0.0, 0.05, 0.10, 0.20)
# (size, oos share, pool of the in-scope rows): the main grid draws in-scope rows from CLINC150 train
# rows outside the reference (a true "no drift" null); "test" cells draw them from the test split.
MAIN_CELLS = [(n, m, "train") for n in SIZES for m in MIXES]
CELLS = MAIN_CELLS + [(n, 0.0, "test") for n in SIZES]


def _evidently():
    import pandas.core.dtypes.common as common

    if not hasattr(common, "infer_dtype_from_object"):  # removed in pandas 3; only Evidently's integrity tests use it

        def _unavailable(*args, **kwargs):
            raise NotImplementedError("infer_dtype_from_object was removed in pandas 3")

        common.infer_dtype_from_object = _unavailable
    import warnings

    warnings.filterwarnings("ignore")
    import evidently
    import evidently.legacy.utils.data_drift_utils as ddu
    from evidently.legacy.calculations.stattests.registry import _get_default_stattest
    from evidently.legacy.core import ColumnType
    from evidently.legacy.metrics.data_drift.embedding_drift_methods import model

    # The random-classifier percentile (1,000 roc_auc_score calls, ~20 s a window here) depends only on
    # the held-out label vector, which train_test_split(random_state=42) makes identical for every window
    # of one size: memoise it by that vector's bytes. Same values, computed once per size.
    original = ddu.roc_auc_random_classifier_percentile
    memo: dict = {}

    def percentile(y_test, p_value=0.05, iter_num=1000, seed=42):
        import numpy as np

        key = (np.asarray(y_test).tobytes(), p_value, iter_num, seed)
        if key not in memo:
            memo[key] = original(y_test, p_value=p_value, iter_num=iter_num, seed=seed)
        return memo[key]

    ddu.roc_auc_random_classifier_percentile = percentile
    return evidently.__version__, _get_default_stattest, ColumnType, model


def drift_bench(seeds: int, permutations: int, checkpoint=None) -> dict:
    import numpy as np
    import pandas as pd

    from tunerail.config import TunerailConfig
    from tunerail.monitor.recipe import _tools
    from tunerail.monitor.drift import Window, build_reference, decide, permutations_needed, test_window

    data = json.loads(CLINC.read_text(encoding="utf-8"))
    train = [t for t, _ in data["train"]]
    test = [t for t, _ in data["test"]]
    oos = [t for t, _ in data["oos_test"] + data["oos_val"] + data["oos_train"]]
    cfg = TunerailConfig.model_validate({"model": {"base": "bundled:smollm2"}})
    mc = cfg.monitor
    measures = _tools(cfg, "bundled:smollm2")
    embed = measures.embed
    t0 = time.perf_counter()
    embed(train + test + oos)  # one pass fills the cache; later calls are lookups
    embed_seconds = time.perf_counter() - t0
    ev_version, default_stattest, column_type, ev_model = _evidently()
    perms = permutations_needed(mc.alpha, 5, permutations)
    rows = []
    timing = {"tunerail": 0.0, "evidently_text": 0.0, "evidently_embedding": 0.0}
    cols = [f"e{i}" for i in range(384)]
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        ref_idx = rng.choice(len(train), 1000, replace=False)
        ref_prompts = [train[i] for i in ref_idx]
        held_out = np.setdiff1d(np.arange(len(train)), ref_idx)
        pools = {"train": [train[i] for i in held_out], "test": test}
        t = time.perf_counter()
        seeded = mc.model_copy(update={"seed": seed})
        ref = build_reference(ref_prompts, measures=measures, mc=seeded)
        timing["tunerail"] += time.perf_counter() - t
        ref_emb = pd.DataFrame(ref.embeddings, columns=cols)
        for size, mix, pool_name in CELLS:
            pool = pools[pool_name]
            n_oos = int(round(mix * size))
            prompts = [pool[i] for i in rng.choice(len(pool), size - n_oos, replace=False)]
            prompts += [oos[i] for i in rng.choice(len(oos), n_oos, replace=False)]
            order = rng.permutation(size)
            prompts = [prompts[i] for i in order]
            window = Window(0, [{"prompt": p} for p in prompts], list(range(1, size + 1)))
            t = time.perf_counter()
            res = test_window(ref, window, measures=measures, mc=seeded, permutations=perms, task="generation")
            decide([res], alpha=mc.alpha, method=mc.correction, rates_warn={})
            timing["tunerail"] += time.perf_counter() - t
            fired = [tr.name for tr, r in zip(res.tests, res.rejected) if r]
            t = time.perf_counter()
            ref_s, cur_s = pd.Series(ref_prompts), pd.Series(prompts)
            stattest = default_stattest(ref_s, cur_s, column_type.Text)
            text = stattest(ref_s, cur_s, column_type.Text, None)
            timing["evidently_text"] += time.perf_counter() - t
            t = time.perf_counter()
            cur_emb = pd.DataFrame(embed(prompts), columns=cols)
            emb_score, emb_drift, _ = ev_model(bootstrap=len(ref_prompts) < 1000)(cur_emb, ref_emb.copy())
            timing["evidently_embedding"] += time.perf_counter() - t
            rows.append(
                {
                    "seed": seed,
                    "size": size,
                    "oos_share": mix,
                    "in_scope_pool": pool_name,
                    "tunerail": bool(fired),
                    "tunerail_tests": fired,
                    "p_values": {tr.name: tr.p_value for tr in res.tests},
                    "evidently_text": bool(text.drifted),
                    "evidently_text_score": float(text.drift_score),
                    "evidently_text_test": stattest.name,
                    "evidently_embedding": bool(emb_drift),
                    "evidently_embedding_auc": float(emb_score),
                }
            )
        print(f"seed {seed + 1}/{seeds} done ({sum(timing.values()):.0f} s)", file=sys.stderr, flush=True)
        if checkpoint is not None:  # a partial table survives an interrupted run
            checkpoint(_summary(rows, seed + 1, perms, mc, ev_version, embed_seconds, timing))
    return _summary(rows, seeds, perms, mc, ev_version, embed_seconds, timing)


def _summary(rows: list, seeds: int, perms: int, mc, ev_version: str, embed_seconds: float, timing: dict) -> dict:
    table = []
    for size, mix, pool_name in CELLS:
        sel = [r for r in rows if r["size"] == size and r["oos_share"] == mix and r["in_scope_pool"] == pool_name]
        entry = {"size": size, "oos_share": mix, "in_scope_pool": pool_name, "windows": len(sel)}
        for method in ("tunerail", "evidently_text", "evidently_embedding"):
            entry[method] = sum(r[method] for r in sel)
        by_test: dict[str, int] = {}
        for r in sel:
            for name in r["tunerail_tests"]:
                by_test[name] = by_test.get(name, 0) + 1
        entry["tunerail_by_test"] = by_test
        table.append(entry)
    return {
        "table": table,
        "rows": rows,
        "permutations": perms,
        "alpha": mc.alpha,
        "correction": mc.correction,
        "evidently_version": ev_version,
        "embed_seconds": round(embed_seconds, 1),
        "seconds": {k: round(v, 1) for k, v in timing.items()},
        "seeds": seeds,
        "reference": "1,000 random in-scope CLINC150 train prompts per seed",
        "windows": (
            "in-scope CLINC150 train prompts outside the reference (pool 'train') or test prompts "
            "(pool 'test') + out-of-scope prompts (oos_test+oos_val+oos_train)"
        ),
    }


def _demo_run(root: Path, rank: int) -> Path:
    """A ``tunerail run`` folder for the Banking77 demo: bundled SmolLM2 + a fresh LoRA adapter (rank ``rank``, q/v).

    The adapter is peft's default initialisation (B = 0), so the answers are the base model's;
    serve merges it at load like a trained one, which is all the timing depends on.
    """
    import csv

    from peft import LoraConfig, get_peft_model

    from tunerail.models import load_causal_lm

    with open(REPO / "examples" / "banking77" / "train.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    run = root / "run"
    (run / "split").mkdir(parents=True)
    (run / "split" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[::2]), encoding="utf-8")
    (run / "split" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[1::2]), encoding="utf-8")
    cfg = {
        "project": "banking77-demo",
        "task": "classification",
        "data": {"format": "text_label", "columns": {"text": "text", "label": "category"}},
        "model": {"base": "bundled:smollm2", "max_seq_length": 128},
        "prompts": [{"system": "You route customer-service banking queries. Answer with the intent label only."}],
        "criteria": {"threshold": 0.5},
        "tracking": {"enabled": False},
    }
    (run / "tunerail.yaml").write_text(json.dumps(cfg, indent=2), encoding="utf-8")  # JSON is YAML
    (run / "train").mkdir()
    (run / "train" / "train.json").write_text(json.dumps({"base_model": "bundled:smollm2"}), encoding="utf-8")
    peft_model = get_peft_model(
        load_causal_lm("bundled:smollm2"),
        LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    peft_model.save_pretrained(str(run / "train" / "adapter"))
    return run


def _load_clients(client, queries: list[str], clients: int, requests: int, max_tokens: int) -> dict:
    """``clients`` threads, each sending its share of ``requests`` one after the other; latency and tokens/s."""
    import statistics
    import threading

    def one(q: str) -> tuple[float, int]:
        t = time.perf_counter()
        r = client.chat.completions.create(
            model="banking77-demo", messages=[{"role": "user", "content": q}], max_tokens=max_tokens, temperature=0
        )
        return time.perf_counter() - t, r.usage.completion_tokens

    results: list[tuple[float, int]] = []
    lock = threading.Lock()
    per = max(1, requests // clients)

    def worker(k: int) -> None:
        for i in range(per):
            res = one(queries[(k * per + i) % len(queries)])
            with lock:
                results.append(res)

    t = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    lat = sorted(r[0] for r in results)
    tokens = sum(r[1] for r in results)
    return {
        "requests": len(results),
        "latency_p50_s": round(statistics.median(lat), 3),
        "latency_p95_s": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 3),
        "tokens": tokens,
        "mean_tokens": round(tokens / len(results), 1),
        "wall_s": round(wall, 2),
        "tokens_per_s": round(tokens / wall, 1),
        "requests_per_s": round(len(results) / wall, 2),
    }


def serve_bench(requests: int, max_tokens: int, rank: int = 8, batch_sizes: tuple[int, ...] = (1, 8)) -> dict:
    """Each ``serve.max_batch_size`` in ``batch_sizes`` (1 = one request at a time) with 1 and 4 clients, same model, one run."""
    import statistics
    import tempfile

    sys.path.insert(0, str(REPO / "tests"))
    from openai import OpenAI
    from serve_fixtures import running_server

    from tunerail.serve import build_state, load_run
    from tunerail.serve.app import create_app

    run = _demo_run(Path(tempfile.mkdtemp()), rank)
    t = time.perf_counter()
    state = build_state(run)  # what `tunerail serve RUN_DIR` loads: base + adapter merged, template, labels, traffic log
    load_s = time.perf_counter() - t
    queries = [r.prompt for r in load_run(run).load_split("test")][::19]
    import torch

    out: dict = {
        "model": f"bundled:smollm2 (SmolLM2-135M-Instruct, fp32) + LoRA r={rank} (q_proj, v_proj) merged",
        "run": "Banking77 demo config (classification, 20 labels), traffic log fsync on",
        "max_tokens": max_tokens,
        "torch_threads": torch.get_num_threads(),
        "load_s": round(load_s, 1),
        "batch_window_ms": state.batch_window_ms,
        "settings": {},
    }
    for size in batch_sizes:
        state.max_batch_size = size
        app = create_app(state)
        with running_server(app) as url:
            client = OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=600)
            _load_clients(client, queries, 1, 1, max_tokens)  # warm-up
            cells = {f"clients_{c}": _load_clients(client, queries, c, requests, max_tokens) for c in (1, 4)}
            cells["batches_run"] = {str(k): v for k, v in sorted(app.state.batcher.batch_sizes.items())}
            cells["load_average_after"] = round(os.getloadavg()[0], 2)
            if size == batch_sizes[-1]:
                ttft = []
                for q in queries[:5]:
                    t = time.perf_counter()
                    stream = client.chat.completions.create(
                        model="banking77-demo", stream=True, max_tokens=max_tokens, messages=[{"role": "user", "content": q}]
                    )
                    first = None
                    for chunk in stream:
                        if first is None and chunk.choices and chunk.choices[0].delta.content:
                            first = time.perf_counter() - t
                    ttft.append(first or float("nan"))
                out["stream_ttft_p50_s"] = round(statistics.median(ttft), 3)
        app.state.batcher.close()
        out["settings"][f"max_batch_size_{size}"] = cells
    state.traffic.close()
    logged = sum(1 for _ in open(run / "traffic" / "traffic.jsonl", encoding="utf-8"))
    out["logged_requests"] = logged
    one = out["settings"][f"max_batch_size_{batch_sizes[0]}"]
    best = out["settings"][f"max_batch_size_{batch_sizes[-1]}"]
    out["speedup_4_clients_batched_vs_1_client_unbatched"] = round(best["clients_4"]["tokens_per_s"] / one["clients_1"]["tokens_per_s"], 2)
    out["speedup_4_clients_batched_vs_1_client_batched"] = round(best["clients_4"]["tokens_per_s"] / best["clients_1"]["tokens_per_s"], 2)
    return out


def _markdown(result: dict) -> str:
    lines = ["# bench/monitor.py", ""]
    d = result.get("drift")
    if d:
        lines += [
            f"Detection rate over {d['seeds']} seeds per cell (reference: {d['reference']}; windows: {d['windows']}). "
            f"tunerail: any input test significant, {d['correction']} over the window's tests at family-wise alpha {d['alpha']}, "
            f"{d['permutations']} permutations. Evidently {d['evidently_version']} defaults on the same windows and embeddings.",
            "",
            "| window | out-of-scope | in-scope rows from | tunerail monitor | Evidently text drift (default) | Evidently embedding drift (default) | tunerail: which tests fired |",
            "|---:|---:|---|---:|---:|---:|---|",
        ]
        for e in d["table"]:
            n = e["windows"]
            fired = ", ".join(f"{k} {v}" for k, v in sorted(e["tunerail_by_test"].items())) or "-"
            lines.append(
                f"| {e['size']} | {100 * e['oos_share']:.0f} % | {e['in_scope_pool']} | {e['tunerail']}/{n} | {e['evidently_text']}/{n} | "
                f"{e['evidently_embedding']}/{n} | {fired} |"
            )
        null = [r for r in d["rows"] if r["oos_share"] == 0 and r["in_scope_pool"] == "train"]
        if null:
            names = sorted({k for r in null for k in r["p_values"]})
            calib = ", ".join(f"{k} {sum(r['p_values'].get(k, 1) <= 0.05 for r in null)}" for k in names)
            lines += [
                "",
                f"Calibration on the {len(null)} no-drift windows (0 %, in-scope rows from train): windows with an "
                f"uncorrected p <= 0.05, per test (a valid test: about {0.05 * len(null):.0f}): {calib}.",
            ]
        lines += [
            "",
            "At 0 % out-of-scope every detection is a false alarm.",
            f"Seconds (all windows): {d['seconds']}; embedding all CLINC150 texts once: {d['embed_seconds']} s.",
            "",
        ]
    s = result.get("serve")
    if s and "settings" in s:
        lines += [
            f"## serve ({s['model']}; {s['run']}; {s['max_tokens']}-token greedy answers, {s['torch_threads']} torch threads)",
            "",
            f"Command: `{s.get('command', result.get('command'))}`; load average at start {s.get('load_average')}; "
            f"model load + merge {s.get('load_s')} s; {s.get('logged_requests')} requests in the traffic log; "
            f"batch window {s['batch_window_ms']} ms.",
            "",
            "| serve.max_batch_size | clients | requests | mean tokens | latency p50 (s) | latency p95 (s) | requests/s | generated tokens/s | batches run (size: count) | load avg after |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        ]
        for name, cells in s["settings"].items():
            size = name.rsplit("_", 1)[1]
            batches = ", ".join(f"{k}: {v}" for k, v in cells["batches_run"].items())
            for c in (1, 4):
                r = cells[f"clients_{c}"]
                lines.append(
                    f"| {size} | {c} | {r['requests']} | {r['mean_tokens']} | {r['latency_p50_s']} | {r['latency_p95_s']} | "
                    f"{r['requests_per_s']} | {r['tokens_per_s']} | {batches if c == 4 else ''} | {cells['load_average_after'] if c == 4 else ''} |"
                )
        lines += [
            "",
            f"4 clients batched vs 1 client one-at-a-time: {s['speedup_4_clients_batched_vs_1_client_unbatched']}x tokens/s; "
            f"vs 1 client batched: {s['speedup_4_clients_batched_vs_1_client_batched']}x. "
            f"Streaming time to first token, p50: {s['stream_ttft_p50_s']} s (batched server, 1 client). "
            "Batches run counts the warm-up and the 1-client cell too.",
            "",
        ]
    lines.append(f"Machine: {result['machine']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--permutations", type=int, default=500)
    parser.add_argument("--serve-requests", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--serve-only", action="store_true")
    parser.add_argument("--drift-only", action="store_true")
    parser.add_argument(
        "--cells", choices=("main", "all"), default="all", help="main: the 8 cells of the issue; all: plus 0 %% windows from the test split"
    )
    args = parser.parse_args()
    if args.cells == "main":
        CELLS[:] = MAIN_CELLS
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    path = OUT / "monitor.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    result["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average {load}"
    result["command"] = "python " + " ".join(["bench/monitor.py"] + sys.argv[1:])

    def save(drift: dict) -> None:
        drift.update(command=result["command"], load_average_start=load, load_average_now=os.getloadavg()[0])
        result["drift"] = drift
        OUT.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        (OUT / "monitor.md").write_text(_markdown(result), encoding="utf-8")

    if not args.serve_only:
        save(drift_bench(args.seeds, args.permutations, checkpoint=save))
    if not args.drift_only:
        result["serve"] = serve_bench(args.serve_requests, args.max_tokens)
        result["serve"]["command"] = result["command"]
        result["serve"]["load_average"] = load
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (OUT / "monitor.md").write_text(_markdown(result), encoding="utf-8")
    print(_markdown(result))


if __name__ == "__main__":
    main()
