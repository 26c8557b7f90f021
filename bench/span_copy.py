"""Span-copy decoding vs free decoding on the WNUT-17 demo's frozen test rows (issue 21 §2).

Reads a finished ``tunerail run`` of the WNUT-17 demo (its config, frozen test split and LoRA
adapter), then generates the tuned model's answers twice on the same batches, alternating free and
span-copy batch by batch so that both see the same machine load, and scores both with the eval's
scorer (field F1, micro over (field, normalised value) pairs) and the same paired bootstrap.

Also reported: whether the fresh free answers equal the eval's cached ones, the share of the
answers' values that are spans of their post (span copy: 1.0 by construction), the rows whose
answer changed, and the span-copy logits processor's own Python time.

    python bench/span_copy.py [RUN_DIR [CONFIG]]   # default /work/demo/wnut17/runs/wnut17-demo, CONFIG: RUN_DIR/../../tunerail.yaml
    # writes bench/results/span_copy.json and .md
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
OUT = REPO / "bench" / "results"


def value_share(posts: list[str], answers: list[str]) -> dict[str, Any]:
    """How many of the answers' field values occur verbatim in their post."""
    from tunerail.eval.alternatives.shape import span_counts

    found, total = span_counts(posts, answers)
    return {"values": total, "spans": found, "share": round(found / total, 4) if total else None}


def timed_processor() -> dict[str, float]:
    """Wrap the span-copy processor's ``__call__`` to add up its own time (the mask's Python cost)."""
    from tunerail.eval import span_copy

    spent = {"s": 0.0}
    call = span_copy.SpanCopyProcessor.__call__

    def wrapped(self: Any, input_ids: Any, scores: Any) -> Any:
        t = time.perf_counter()
        out = call(self, input_ids, scores)
        spent["s"] += time.perf_counter() - t
        return out

    span_copy.SpanCopyProcessor.__call__ = wrapped  # type: ignore[method-assign]
    return spent


def main(run: Path, config_path: Path) -> dict[str, Any]:
    from tunerail import tasks as T
    from tunerail.config import load_config
    from tunerail.eval import compare as C
    from tunerail.eval import generate as G
    from tunerail.eval.inputs import load_rows
    from tunerail.models import cache_root
    from tunerail.prompting import pick_template, prompt_for

    config = load_config(config_path)
    records, _ = load_rows(config, run / "split" / "test.jsonl")
    template = pick_template(config)
    lm = G.load_model(config.model.base, run / "train" / "adapter")
    prompts = [prompt_for(lm.tokenizer, r, template) for r in records]
    posts, refs = [r.prompt for r in records], [r.completion for r in records]
    ev = config.eval
    key = G.cache_key("gen", lm.fingerprint, G.data_hash(prompts), ev.max_new_tokens)
    cached_path = cache_root() / "eval" / f"{key}.json"
    cached = json.loads(cached_path.read_text(encoding="utf-8"))["value"] if cached_path.exists() else None

    spent = timed_processor()
    free: list[str] = []
    copied: list[str] = []
    seconds = {"free": 0.0, "span_copy": 0.0}
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # as the eval batches them
    for start in range(0, len(order), ev.batch_size):
        idx = order[start : start + ev.batch_size]
        t = time.perf_counter()
        free += G.generate(lm, [prompts[i] for i in idx], max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size)
        seconds["free"] += time.perf_counter() - t
        t = time.perf_counter()
        copied += G.generate_span_copy(
            lm, [prompts[i] for i in idx], [posts[i] for i in idx], max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size
        )
        seconds["span_copy"] += time.perf_counter() - t
        print(f"{start + len(idx)}/{len(order)} rows, free {seconds['free']:.0f} s, span copy {seconds['span_copy']:.0f} s", flush=True)
    back = {i: k for k, i in enumerate(order)}
    free = [free[back[i]] for i in range(len(prompts))]
    copied = [copied[back[i]] for i in range(len(prompts))]

    metric, resamples = config.criteria.metric, ev.bootstrap
    scored = {"free": T.score("extraction", refs, free, []), "span_copy": T.score("extraction", refs, copied, [])}
    est = {name: C.estimates(s, len(refs), resamples) for name, s in scored.items()}
    diff, _ = C.compare(scored["span_copy"], scored["free"], metric, resamples, "")
    changed = [i for i in range(len(refs)) if free[i] != copied[i]]
    return {
        "run": str(run),
        "rows": len(refs),
        "metric": metric,
        "model": lm.name,
        "free": {**est["free"][metric], "json_valid": est["free"]["json_valid"]["value"], **value_share(posts, free)},
        "span_copy": {**est["span_copy"][metric], "json_valid": est["span_copy"]["json_valid"]["value"], **value_share(posts, copied)},
        "span_copy_minus_free": diff,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "time_ratio": round(seconds["span_copy"] / seconds["free"], 3),
        "processor_s": round(spent["s"], 2),
        "free_matches_eval_cache": None if cached is None else cached == free,
        "rows_changed": len(changed),
        "examples": [{"post": posts[i], "reference": refs[i], "free": free[i], "span_copy": copied[i]} for i in changed[:8]],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_average": [round(x, 1) for x in os.getloadavg()]},
    }


def markdown(r: dict[str, Any]) -> str:
    f, s, d = r["free"], r["span_copy"], r["span_copy_minus_free"]
    lines = [
        f"# Span-copy vs free decoding, WNUT-17 demo adapter ({r['rows']} frozen test rows)",
        "",
        f"Run: `{r['run']}`; model {r['model']}; load average {', '.join(map(str, r['machine']['load_average']))} "
        f"on {r['machine']['cpus']} CPUs. Batches alternate free / span copy, so both see the same load.",
        "",
        f"| decoding | {r['metric']} | 95 % CI | JSON valid | values that are spans of the post | generation s |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
        f"| free | {f['value']:.3f} | {f['low']:.3f}-{f['high']:.3f} | {f['json_valid']:.3f} | {f['spans']}/{f['values']} | {r['seconds']['free']} |",
        f"| span copy | {s['value']:.3f} | {s['low']:.3f}-{s['high']:.3f} | {s['json_valid']:.3f} | {s['spans']}/{s['values']} "
        f"| {r['seconds']['span_copy']} |",
        "",
        f"Span copy - free (paired bootstrap): {d['value']:+.4f}, 95 % CI {d['low']:+.4f} to {d['high']:+.4f}. "
        f"Generation time ratio span copy / free: {r['time_ratio']} (the processor's own Python time: {r['processor_s']} s). "
        f"Rows whose answer changed: {r['rows_changed']}. Fresh free answers equal the eval's cached ones: {r['free_matches_eval_cache']}.",
        "",
    ]
    for e in r["examples"]:
        lines += [
            f"- post: {e['post']}",
            f"  - reference: `{e['reference']}`",
            f"  - free: `{e['free']}`",
            f"  - span copy: `{e['span_copy']}`",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/demo/wnut17/runs/wnut17-demo")
    cfg = Path(sys.argv[2]) if len(sys.argv) > 2 else run_dir.parent.parent / "tunerail.yaml"
    os.chdir(cfg.parent)  # the config's relative paths (data, store) resolve against it
    result = main(run_dir.resolve(), cfg.resolve())
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "span_copy.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (OUT / "span_copy.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
