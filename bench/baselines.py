"""Cheap baselines on an example's frozen test split, without training an LLM.

Runs the first two pipeline steps exactly as `tunerail run` does (doctor --fix, then the grouped
split, same config and seed), fits tunerail's cheap baselines on train + validation and scores
them on the frozen test split with the eval's bootstrap CIs. These are the numbers a fine-tune
must beat (by its CI) for `tunerail eval` to say READY.

    python bench/baselines.py [examples/banking77/tunerail.yaml]
    # prints a table; writes bench/results/baselines.json and .md

Wall times are for the fit + predict of each baseline (embeddings uncached on the first run;
``embed_s`` separates the MiniLM encoding), on whatever machine runs this.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str]) -> dict:
    from tunerail.config import load_config
    from tunerail.doctor import doctor
    from tunerail.eval import baselines as B
    from tunerail.eval.recipe import _estimates, _load, _score
    from tunerail.split import split

    config_path = Path(argv[0]) if argv else REPO / "examples" / "banking77" / "tunerail.yaml"
    config = load_config(config_path)
    work = Path(tempfile.mkdtemp(prefix="bench-baselines."))
    config.store.path = str(work / "store")
    t = time.perf_counter()
    doctor(config.resolve(config.data.path), config, out_dir=work / "doctor", fix=True)
    result = split(work / "doctor" / "clean.jsonl", config, out_dir=work / "split")
    prep_s = time.perf_counter() - t
    train, _ = _load(config, result.paths["train"])
    val, _ = _load(config, result.paths["validation"])
    test, _ = _load(config, result.paths["test"])
    refs = [r.completion for r in test]
    labels = sorted({r.label for r in test if r.label is not None})
    metric = config.criteria.metric

    t = time.perf_counter()
    if config.task == "classification":
        fitted = B.classification_baselines(
            ([r.prompt for r in train], [r.label for r in train]),
            ([r.prompt for r in val], [r.label for r in val]),
            [r.prompt for r in test],
            embedding_model=config.model.embedding_model,
            seed=config.split.seed,
        )
    else:
        rows = train + val
        fitted = [
            B.nearest_neighbour(
                [r.prompt for r in rows],
                [r.completion for r in rows],
                [r.prompt for r in test],
                embedding_model=config.model.embedding_model,
            )
        ]
    total_s = time.perf_counter() - t
    out = {
        "config": str(config_path.relative_to(REPO) if config_path.is_relative_to(REPO) else config_path),
        "task": config.task,
        "metric": metric,
        "sizes": result.sizes,
        "fit_rows": len(train) + len(val),
        "test_rows": len(test),
        "doctor_and_split_s": round(prep_s, 1),
        "baselines_s": round(total_s, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": list(os.getloadavg())},
        "baselines": [],
    }
    for b in fitted:
        scores = _score(config.task, refs, {"text": b.predictions}, labels)
        est = _estimates(scores, len(test), config.eval.bootstrap)
        out["baselines"].append(
            {
                "name": b.name,
                "label": b.label,
                "seconds": round(b.seconds, 2),
                metric: est[metric],
                **({"macro_f1": est["macro_f1"]} if "macro_f1" in est else {}),
                "details": b.details,
            }
        )
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "baselines.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    lines = [
        f"# Cheap baselines on `{out['config']}` (frozen test split, {len(test)} rows; fitted on "
        f"{out['fit_rows']} train + validation rows)",
        "",
        f"| baseline | {metric} | 95 % CI | fit + predict s |",
        "| --- | --- | --- | --- |",
    ]
    for b in out["baselines"]:
        e = b[metric]
        lines.append(f"| {b['label']} | {e['value']:.3f} | {e['low']:.3f}-{e['high']:.3f} | {b['seconds']:.1f} |")
    lines += [
        "",
        f"`python bench/baselines.py {out['config']}`; {os.cpu_count()} CPUs, load average at the end {out['machine']['load_avg'][0]:.1f}.",
    ]
    (results / "baselines.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
