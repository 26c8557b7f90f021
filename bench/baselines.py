"""Every family of alternatives on real data, with the eval's metric, 95 % CIs and fit seconds.

- classification: an example's frozen test split (Banking77 by default), made exactly as `tunerail run`
  makes it (doctor --fix, then the grouped split, same config and seed);
- span extraction: the WNUT-17 demo's frozen test split, made the same way from
  ``examples/wnut17/tunerail.yaml`` (CRF, spaCy NER, nearest neighbour, and the opt-in MiniLM token
  classifier);
- summarisation: DialogSum, read from ``../shared/data/summarization/dialogsum`` (CC BY-NC-SA: read
  here, never bundled): fitted on its 500 dev rows, scored on its 500 test rows against ``summary1``.

Each alternative is fitted on train + validation only and scored on the test rows with the eval's
scorer and bootstrap (the numbers a fine-tune must beat by its CI for READY).

    python bench/baselines.py [classification|spans|summary ...] [--opt-in] [--no-budget-too]    # default: all three
    # prints the tables; writes bench/results/baselines.json and .md

The alternatives are fitted together as the eval fits them, within its time budget for them
(``tunerail/eval/alternatives/budget.py``: 10 % of the eval step's estimate); ``--no-budget-too`` also
fits each family without it (results under "<family> (no budget)"), to show what the budget costs.

Fit seconds are wall time of fit + predict on whatever machine runs this (embeddings uncached on the
first run); the load average is recorded beside them because a busy machine inflates them.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# ../shared beside the checkout (a git worktree sits one level deeper, under wt/<name>)
SHARED = next((p for p in (REPO.parent / "shared", REPO.parent.parent / "shared") if p.exists()), REPO.parent / "shared")
DIALOGSUM = SHARED / "data" / "summarization" / "dialogsum"
CONFIGS = {"classification": "examples/banking77/tunerail.yaml", "spans": "examples/wnut17/tunerail.yaml"}


def split_example(config_path: Path) -> tuple[Any, dict[str, list[Any]], dict[str, Any]]:
    """The example's train / validation / test records, made as `tunerail run` makes them."""
    from tunerail.config import load_config
    from tunerail.doctor import doctor
    from tunerail.eval.inputs import load_rows as _load
    from tunerail.split import split

    config = load_config(config_path)
    work = Path(tempfile.mkdtemp(prefix="bench-baselines."))
    config.store.path = str(work / "store")
    t = time.perf_counter()
    doctor(config.resolve(config.data.path), config, out_dir=work / "doctor", fix=True)
    result = split(work / "doctor" / "clean.jsonl", config, out_dir=work / "split")
    rows = {name: _load(config, result.paths[name])[0] for name in ("train", "validation", "test")}
    return config, rows, {"sizes": result.sizes, "doctor_and_split_s": round(time.perf_counter() - t, 1)}


def dialogsum() -> tuple[dict[str, list[tuple[str, str]]], dict[str, Any]]:
    """DialogSum dev rows to fit on, test rows (first reference) to score."""

    def read(name: str, key: str) -> list[tuple[str, str]]:
        lines = (DIALOGSUM / name).read_text(encoding="utf-8").splitlines()
        return [(d["dialogue"], d[key]) for d in map(json.loads, lines)]

    return {"fit": read("dev.jsonl", "summary"), "test": read("test.jsonl", "summary1")}, {"source": str(DIALOGSUM)}


def run_family(
    task: str,
    metric: str,
    fit: list[tuple[str, str]],
    val: list[tuple[str, str]],
    test: list[tuple[str, str]],
    opt_in: bool,
    budget: bool = True,
    **kw: Any,
):
    """Fit the registry's alternatives for the data's shape (+ the opt-in ones) as the eval does, within its
    time budget (``budget=False``: unlimited), and score them with the eval's CIs."""
    from tunerail import tasks
    from tunerail.eval.alternatives import FitData, choose, fit_alternatives, local_budget
    from tunerail.eval.alternatives.registry import OPT_IN
    from tunerail.eval.compare import estimates as _estimates

    seconds = local_budget(len(test)) if budget else None
    data = FitData(
        task,
        [p for p, _ in fit],
        [a for _, a in fit],
        [p for p, _ in val],
        [a for _, a in val],
        [p for p, _ in test],
        **kw,
        time_budget_s=seconds,
    )
    names = [a.name for family in OPT_IN.values() for a in family] if opt_in else []
    shape, chosen = choose(task, data.fit_prompts, data.fit_answers, names)
    refs = [a for _, a in test]
    labels = sorted(set(refs)) if task == "classification" else []
    rows = []
    for f in fit_alternatives(data, chosen, None):  # together, as the eval fits them: budgeted ones get what the others left
        row: dict[str, Any] = {"name": f.name, "label": f.label, "library": f.library, "seconds": round(f.seconds, 2), "details": f.details}
        if f.error is not None:
            row["error"] = f.error
        else:
            est = _estimates(tasks.score(task, refs, f.predictions, labels), len(refs), 1000)
            row[metric] = est[metric]
        rows.append(row)
        print(f"  {f.name}: {row.get(metric, {}).get('value', row.get('error'))} ({f.seconds:.1f} s)", flush=True)
    spent = round(sum(r["seconds"] for r in rows), 1)
    return {
        "task": task,
        "shape": shape,
        "metric": metric,
        "fit_rows": len(fit) + len(val),
        "test_rows": len(test),
        "budget_s": None if seconds is None else round(seconds, 1),
        "spent_s": spent,
        "alternatives": rows,
    }


def main(argv: list[str]) -> dict:
    opt_in = "--opt-in" in argv
    both = "--no-budget-too" in argv  # also fit each family without the time budget (the key gets " (no budget)")
    wanted = [a for a in argv if not a.startswith("--")] or ["classification", "spans", "summary"]
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "families": {}}
    for family in wanted:
        print(f"{family} ...", flush=True)
        if family == "summary":
            rows, info = dialogsum()
            fit_args: tuple[Any, ...] = ("generation", "rougeL", rows["fit"], [], rows["test"], opt_in)
            kw: dict[str, Any] = {}
        else:
            config, split_rows, info = split_example(REPO / CONFIGS[family])

            def pairs(name: str) -> list[tuple[str, str]]:
                return [(r.prompt, r.label if config.task == "classification" else r.completion) for r in split_rows[name]]

            fit_args = (config.task, config.criteria.metric, pairs("train"), pairs("validation"), pairs("test"), opt_in)
            kw = {"embedding_model": config.model.embedding_model, "seed": config.split.seed}
            info["config"] = CONFIGS[family]
        for budget in (True, False) if both else (True,):
            res = run_family(*fit_args, budget=budget, **kw)
            key = family if budget else f"{family} (no budget)"
            out["families"][key] = {**info, **res, "load_avg_after": list(os.getloadavg())}
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(str(results / "baselines.lock")):  # families may run as parallel processes
        old = json.loads((results / "baselines.json").read_text(encoding="utf-8")) if (results / "baselines.json").exists() else {}
        merged = {**out, "families": {**old.get("families", {}), **out["families"]}}  # a partial run keeps the other families
        (results / "baselines.json").write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
        lines = markdown(merged)
        (results / "baselines.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return merged


def markdown(out: dict[str, Any]) -> list[str]:
    lines = ["# Alternatives a fine-tune must beat, per task family", ""]
    for family, res in out["families"].items():
        metric = res["metric"]
        where = f"`{res['config']}` frozen test split" if "config" in res else "DialogSum test (summary1)"
        lines += [
            f"## {family}: {where}, {res['test_rows']} rows; fitted on {res['fit_rows']} rows (shape: {res['shape']})",
            "",
            f"| alternative | library | {metric} | 95 % CI | fit + predict s | CPU s |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for b in res["alternatives"]:
            if "error" in b:
                lines.append(f"| {b['label']} | {b['library']} | failed: {b['error']} | | {b['seconds']:.1f} | |")
                continue
            e = b[metric]
            cpu = f"{b['details']['cpu_seconds']:.1f}" if "cpu_seconds" in b["details"] else ""
            extra = f" ({b['details']['pipeline']})" if "pipeline" in b["details"] else ""
            if "epochs_run" in b["details"]:
                extra += f"; {b['details']['epochs_run']} epochs, stopped: {b['details']['stopped']}"
            lines.append(
                f"| {b['label']}{extra} | {b['library']} | {e['value']:.3f} | {e['low']:.3f}-{e['high']:.3f} | {b['seconds']:.1f} | {cpu} |"
            )
        load = f"Load average after: {res['load_avg_after'][0]:.1f} on {out['machine']['cpus']} CPUs."
        if "spent_s" in res:
            budget = (
                f"budget {res['budget_s']:.1f} CPU s: 10 % of the eval step's estimate less a 10 % headroom"
                if res.get("budget_s")
                else "no time budget"
            )
            cpu = sum(float(b["details"].get("cpu_seconds", 0)) for b in res["alternatives"])
            load = f"All together {res['spent_s']:.1f} s, {cpu:.1f} CPU s ({budget}). {load}"
        lines += ["", load, ""]
    lines.append("`python bench/baselines.py [classification|spans|summary] [--opt-in] [--no-budget-too]`")
    return lines


if __name__ == "__main__":
    main(sys.argv[1:])
