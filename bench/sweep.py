"""`tunerail sweep` against ``Trainer.hyperparameter_search(backend="optuna")`` at the same compute.

    python bench/sweep.py --seconds 240 --skip postgres     # ~20 minutes on 2 shared CPU cores

Part 1, the demo (``examples/banking77/tunerail.yaml``: SmolLM2-135M bundled, LoRA, its prompt) on a
reduced Banking77 subset so it fits a shared 2-core box: the ``--intents`` most frequent intents,
``--per-intent`` train rows, 3 validation and ``--test-per-intent`` test rows each (disjoint rows).

- ``tunerail``: ``tunerail.sweep`` with its defaults (TPE, median pruner, space by method), the
  budget share set so the sweep may spend ``--seconds``;
- ``trainer``: transformers' ``hyperparameter_search(backend="optuna")`` with its default space
  (lr 1e-6..1e-4 log, epochs 1..5, seed 1..40, batch 4..64) and ``timeout=--seconds`` (Optuna checks
  it between trials only), the demo's LoRA (r 16, alpha 32) through ``model_init``. It runs in a
  child process killed at ``--trainer-cap`` x ``--seconds`` (its first trial alone can outlast the
  timeout many times over), and what finished by then is read from its Optuna storage.
- the test accuracy (free generation, first line matched to a label) of the model trained with
  ``tunerail train`` using the demo's hand-set config, the config + ``best.yaml``, and the config +
  the Trainer search's best setting; paired CIs against the hand-set model
  (``tunerail.stats.paired_bootstrap`` and ``mcnemar``).

Part 2, the tiny random Llama (tests/train_tiny.py) on a real PostgreSQL (tests/pg.py starts one):
one worker vs two workers on one study for ``--pg-seconds``: completed+pruned trials per hour.
Results: ``bench/results/sweep.json`` and ``.md``. The CPU is shared: compare within a run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
DEMO = REPO / "examples" / "banking77" / "tunerail.yaml"


def _splits(tmp: Path, rows: int, val: int) -> tuple[Path, Path]:
    from train_tiny import banking_rows, write_jsonl

    return write_jsonl(tmp / "train.jsonl", banking_rows(rows)), write_jsonl(tmp / "validation.jsonl", banking_rows(val, offset=1000))


def demo_splits(tmp: Path, intents: int, per_intent: int, test_per_intent: int) -> dict[str, Path]:
    """Disjoint train / validation / test rows of the ``intents`` most frequent Banking77 intents."""
    from train_tiny import BANKING, write_jsonl

    with open(BANKING, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    keep = [lab for lab, _ in Counter(r["category"] for r in rows).most_common(intents)]
    parts: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    for lab in keep:
        mine = [r for r in rows if r["category"] == lab]
        parts["train"] += mine[:per_intent]
        parts["validation"] += mine[per_intent : per_intent + 3]
        parts["test"] += mine[per_intent + 3 : per_intent + 3 + test_per_intent]
    return {k: write_jsonl(tmp / f"{k}.jsonl", v) for k, v in parts.items()}


def demo_config(tmp: Path, seconds: float):
    """The demo's config, tracking off, its store in ``tmp``, a budget whose sweep share is ``seconds``."""
    from tunerail.config import load_config

    cfg = load_config(DEMO)
    cfg.tracking.enabled = False
    cfg.store.path = str(tmp / "store")
    cfg.budget.max_hours = seconds / 3600 / cfg.budget.search_share
    cfg.sweep.trials = 50
    return cfg


def run_tunerail(tmp: Path, splits: dict[str, Path], seconds: float) -> dict:
    from tunerail.sweep import sweep

    start = time.perf_counter()
    result = sweep(demo_config(tmp, seconds), train_data=splits["train"], validation_data=splits["validation"], out_dir=tmp / "tunerail")
    wall = time.perf_counter() - start
    c = result.counts
    saved = json.loads((tmp / "tunerail" / "sweep.json").read_text())["share"]
    return {
        "best_val_loss": result.best_value,
        "best_params": result.best_params,
        "wall_seconds": round(wall, 1),
        "used_seconds": saved["used_seconds"],
        "allowed_seconds": seconds,
        "used_of_allowed": round(saved["used_seconds"] / seconds, 3),
        "measured_costs": saved["measured_costs"],
        "trials": len(result.trials),
        "pruned": c.get("PRUNED", 0),
        "budget_cut": c.get("budget_cut", 0),
        "complete": c.get("COMPLETE", 0),
        "best_yaml": str(tmp / "tunerail" / "best.yaml"),
    }


def trainer_search(tmp: Path, splits: dict[str, Path], seconds: float) -> dict:
    """HF Trainer + peft, ``hyperparameter_search(backend="optuna")`` with its default space (child process)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments

    from tunerail.models import load_causal_lm, load_tokenizer
    from tunerail.prompting import pick_template
    from tunerail.train.data import Example, collate, load_split, tokenize_records

    cfg = demo_config(tmp, seconds)
    tok = load_tokenizer(cfg.model.base)
    template = pick_template(cfg)

    def encode(path, role):
        return tokenize_records(load_split(path, cfg, role), tok, template, max_length=cfg.model.max_seq_length)

    class _Rows(torch.utils.data.Dataset):
        def __init__(self, rows):
            self.rows = rows

        def __len__(self):
            return len(self.rows)

        def __getitem__(self, i):
            return self.rows[i]

    train_ds, val_ds = _Rows(encode(splits["train"], "train")), _Rows(encode(splits["validation"], "validation"))

    def collator(batch: list[Example]) -> dict:
        return dict(collate(batch, tok.pad_token_id))

    lora = cfg.train.lora

    def model_init(trial=None):
        base = load_causal_lm(cfg.model.base, dtype="float32")
        return get_peft_model(
            base,
            LoraConfig(
                r=lora.r,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                task_type="CAUSAL_LM",
            ),
        )

    args = TrainingArguments(
        output_dir=str(tmp / "hf"),
        eval_strategy="epoch",
        save_strategy="no",
        report_to=[],
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )
    trainer = Trainer(model_init=model_init, args=args, train_dataset=train_ds, eval_dataset=val_ds, data_collator=collator)
    url = f"sqlite:///{tmp / 'hf.db'}"
    start = time.perf_counter()
    best = trainer.hyperparameter_search(direction="minimize", backend="optuna", n_trials=50, timeout=seconds, storage=url, study_name="hf")
    return {"best_val_loss": best.objective, "best_params": best.hyperparameters, "search_seconds": round(time.perf_counter() - start, 1)}


def run_trainer(tmp: Path, splits: dict[str, Path], seconds: float, cap: float) -> dict:
    """The Trainer search in a child process, killed at ``cap`` seconds; finished trials read from its storage."""
    import optuna

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, __file__, "--trainer-child", str(tmp), "--seconds", str(seconds)],
        env=env,
        stdout=open(tmp / "trainer.log", "w"),
        stderr=subprocess.STDOUT,
    )
    try:
        code = child.wait(cap)
        killed = False
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        code, killed = None, True
    wall = time.perf_counter() - start
    out: dict = {
        "allowed_seconds": seconds,
        "wall_seconds": round(wall, 1),
        "used_of_allowed": round(wall / seconds, 3),
        "killed_at_cap": killed,
        "exit_code": code,
        "note": "Optuna's timeout is checked between trials only; no pruning (the Trainer reports no "
        "intermediate values to Optuna); wall includes loading the model per trial (model_init)",
    }
    try:
        trials = optuna.load_study(study_name="hf", storage=f"sqlite:///{tmp / 'hf.db'}").get_trials()
    except KeyError:
        trials = []
    done = [t for t in trials if t.state.name == "COMPLETE"]
    out.update(
        trials=len(trials),
        complete=len(done),
        pruned=sum(t.state.name == "PRUNED" for t in trials),
        running_when_stopped=sum(t.state.name == "RUNNING" for t in trials),
    )
    if done:
        best = min(done, key=lambda t: t.value)
        out.update(best_val_loss=best.value, best_params=best.params)
    else:
        out.update(best_val_loss=None, best_params=None)
    if (tmp / "trainer.json").exists():
        out.update(json.loads((tmp / "trainer.json").read_text()))
    if not killed and code != 0:
        out["log_tail"] = (tmp / "trainer.log").read_text()[-1500:]
    return out


def test_accuracy(tmp: Path, splits: dict[str, Path], seconds: float, name: str, params: dict | None) -> dict:
    """Train the demo config (+ ``params``) with ``tunerail train``; per-example test accuracy by free generation."""
    from tunerail.eval import generate as G
    from tunerail.scoring import score_classification
    from tunerail.prompting import pick_template, prompt_for
    from tunerail.sweep.space import apply
    from tunerail.train.data import load_split
    from tunerail.train.recipe import train

    cfg = demo_config(tmp, seconds)
    cfg.budget.max_hours = None  # the final training is not part of the search share
    if params:
        cfg = apply(cfg, params)
    start = time.perf_counter()
    result = train(
        cfg, train_data=splits["train"], validation_data=splits["validation"], out_dir=tmp / f"train-{name}", progress=lambda e, i: None
    )
    train_s = time.perf_counter() - start
    records = load_split(splits["test"], cfg, "test")
    lm = G.load_model(cfg.model.base, result.adapter_dir)
    template = pick_template(cfg)
    labels = sorted({r.label for r in records})
    texts = G.generate(
        lm, [prompt_for(lm.tokenizer, r, template) for r in records], max_new_tokens=cfg.eval.max_new_tokens, batch_size=cfg.eval.batch_size
    )
    correct = score_classification([r.completion for r in records], texts, labels).per_example["accuracy"]
    return {
        "params": params,
        "train_seconds": round(train_s, 1),
        "steps": result.actual["steps"],
        "best_val_loss": result.best_val_loss,
        "stopped_reason": result.stopped_reason,
        "test_rows": len(records),
        "test_accuracy": float(correct.mean()),
        "correct": [int(c) for c in correct],
    }


def _trainer_to_tunerail(params: dict) -> dict:
    """The Trainer's best hyperparameters as a tunerail overlay (its seed dimension is dropped: tunerail fixes seeds)."""
    return {
        "learning_rate": float(params["learning_rate"]),
        "epochs": int(params["num_train_epochs"]),
        "batch_size": int(params["per_device_train_batch_size"]),
    }


def paired(tuned: dict, hand: dict) -> dict:
    from tunerail import stats as S

    est = S.paired_bootstrap(tuned["correct"], hand["correct"]).to_dict()
    return {"difference": est, "mcnemar": S.mcnemar([bool(c) for c in tuned["correct"]], [bool(c) for c in hand["correct"]])}


def _pg_workers(tmp: Path, url: str, workers: int, seconds: float) -> dict:
    from train_tiny import tiny_model_dir

    import optuna

    cfg = tmp / f"pg{workers}.yaml"
    cfg.write_text(
        json.dumps(
            {
                "task": "classification",
                "model": {"base": str(tiny_model_dir()), "max_seq_length": 128},
                "train": {"bf16": False, "probe_steps": 0},
                "budget": {"max_hours": 100.0},
                "tracking": {"enabled": False},
                "store": {"path": str(tmp / "store")},
                "sweep": {"trials": 10_000, "heartbeat_seconds": 5, "space": {"batch_size": [8], "epochs": 2, "replay_ratio": None}},
            }
        )
    )
    splits = _splits(tmp, 64, 16)
    study = f"bench-{workers}w-{os.getpid()}"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tunerail",
                "sweep",
                "--config",
                str(cfg),
                "--storage",
                url,
                "--study",
                study,
                "--out",
                str(tmp / f"w{workers}-{i}"),
                "--train",
                str(splits[0]),
                "--validation",
                str(splits[1]),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(workers)
    ]
    storage = optuna.storages.RDBStorage(url)
    time.sleep(seconds)
    done = len(
        optuna.load_study(study_name=study, storage=storage).get_trials(
            states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        )
    )
    for p in procs:
        p.kill()
        p.wait()
    return {"workers": workers, "seconds": seconds, "trials": done, "trials_per_hour": round(done * 3600 / seconds, 1)}


def run_postgres(tmp: Path, seconds: float) -> list[dict]:
    import pg

    gen = pg.postgres_server()
    url = next(gen)
    try:
        return [_pg_workers(tmp, url, n, seconds) for n in (1, 2)]
    finally:
        gen.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=240, help="compute each search may spend (part 1)")
    parser.add_argument("--intents", type=int, default=5)
    parser.add_argument("--per-intent", type=int, default=8)
    parser.add_argument("--test-per-intent", type=int, default=10)
    parser.add_argument("--trainer-cap", type=float, default=2.0, help="kill the Trainer search at this x --seconds")
    parser.add_argument("--pg-seconds", type=float, default=60)
    parser.add_argument("--name", default="sweep", help="results file stem in bench/results (keep one run beside another)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["tunerail", "trainer", "accuracy", "postgres"])
    parser.add_argument("--trainer-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if args.trainer_child:
        tmp = Path(args.trainer_child)
        found = trainer_search(tmp, {k: tmp / f"{k}.jsonl" for k in ("train", "validation", "test")}, args.seconds)
        (tmp / "trainer.json").write_text(json.dumps(found, default=str))
        return
    results = REPO / "bench" / "results"
    previous = json.loads((results / f"{args.name}.json").read_text()) if (results / f"{args.name}.json").exists() else {}
    out: dict = {
        "command": " ".join(["python", "bench/sweep.py", *sys.argv[1:]]),
        "load_average_start": os.getloadavg(),
        "cpus": os.cpu_count(),
        "reduced": {
            "intents": args.intents,
            "train_per_intent": args.per_intent,
            "validation_per_intent": 3,
            "test_per_intent": args.test_per_intent,
        },
    }

    def save() -> None:  # after every stage: a stage that fails later leaves the figures measured so far
        out["load_average_end"] = os.getloadavg()
        results.mkdir(parents=True, exist_ok=True)
        (results / f"{args.name}.json").write_text(json.dumps(out, indent=2, default=str))
        (results / f"{args.name}.md").write_text(render_md(out))

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        splits = demo_splits(tmp, args.intents, args.per_intent, args.test_per_intent)
        if "tunerail" not in args.skip:
            out["tunerail"] = run_tunerail(tmp, splits, args.seconds)
            print("tunerail", out["tunerail"], flush=True)
            save()
        if "trainer" not in args.skip:
            out["trainer"] = run_trainer(tmp, splits, args.seconds, args.trainer_cap * args.seconds)
            print("trainer", out["trainer"], flush=True)
            save()
        if "accuracy" not in args.skip:
            acc = out["test_accuracy"] = {"hand_set": test_accuracy(tmp, splits, args.seconds, "hand", None)}
            print("hand-set", {k: v for k, v in acc["hand_set"].items() if k != "correct"}, flush=True)
            save()
            if out.get("tunerail", {}).get("best_params"):
                acc["tunerail_best"] = test_accuracy(tmp, splits, args.seconds, "tunerail", out["tunerail"]["best_params"])
                acc["tunerail_best"]["vs_hand_set"] = paired(acc["tunerail_best"], acc["hand_set"])
                print("tunerail best", {k: v for k, v in acc["tunerail_best"].items() if k != "correct"}, flush=True)
                save()
            if out.get("trainer", {}).get("best_params"):
                acc["trainer_best"] = test_accuracy(
                    tmp, splits, args.seconds, "trainer", _trainer_to_tunerail(out["trainer"]["best_params"])
                )
                acc["trainer_best"]["vs_hand_set"] = paired(acc["trainer_best"], acc["hand_set"])
                print("trainer best", {k: v for k, v in acc["trainer_best"].items() if k != "correct"}, flush=True)
        if "postgres" not in args.skip:
            out["postgres"] = run_postgres(tmp, args.pg_seconds)
            print("postgres", out["postgres"], flush=True)
        elif previous.get("postgres"):
            out["postgres"] = previous["postgres"]
            out["postgres_note"] = (
                "not re-run; kept from the earlier run: " + previous.get("postgres_note", "") + f" (command: {previous.get('command')})"
            )
    save()


def render_md(out: dict) -> str:
    r = out["reduced"]
    lines = [
        f"# bench/sweep.py (reduced run: {r['intents']} intents, {r['train_per_intent']} train / "
        f"{r['validation_per_intent']} validation / {r['test_per_intent']} test rows per intent)\n",
        f"`{out['command']}`; {out['cpus']} CPUs shared with other agents, load average "
        f"{', '.join(f'{x:.1f}' for x in out['load_average_start'])} at start, "
        f"{', '.join(f'{x:.1f}' for x in out['load_average_end'])} at end. Compare within this run only.\n",
        "| search | best val loss | seconds used / allowed | trials | pruned | budget-cut | test accuracy of its best |",
        "|---|---|---|---|---|---|---|",
    ]
    acc = out.get("test_accuracy", {})
    for name, key in (
        ("tunerail sweep (TPE + median, defaults)", "tunerail"),
        ("Trainer.hyperparameter_search(optuna), default space", "trainer"),
    ):
        s = out.get(key)
        if not s:
            continue
        used = s.get("used_seconds", s.get("wall_seconds"))
        loss = f"{s['best_val_loss']:.4f}" if s.get("best_val_loss") is not None else "none finished"
        test = acc.get(f"{key}_best")
        shown = f"{100 * test['test_accuracy']:.1f} %" if test else "-"
        extra = " (killed at the cap)" if s.get("killed_at_cap") else ""
        lines.append(
            f"| {name} | {loss} | {used:.0f} / {s['allowed_seconds']:.0f} ({100 * used / s['allowed_seconds']:.0f} %)"
            f"{extra} | {s.get('trials', '?')} | {s.get('pruned', 0)} | {s.get('budget_cut', '-')} | {shown} |"
        )
    if acc.get("hand_set"):
        h = acc["hand_set"]
        lines.append(f"\nHand-set demo config: test accuracy {100 * h['test_accuracy']:.1f} % on {h['test_rows']} rows.\n")
        for key, label in (("tunerail_best", "config + best.yaml"), ("trainer_best", "config + the Trainer's best")):
            t = acc.get(key)
            if t:
                d, m = t["vs_hand_set"]["difference"], t["vs_hand_set"]["mcnemar"]
                lines.append(
                    f"- {label}: {100 * t['test_accuracy']:.1f} %, difference {100 * d['value']:+.1f} points "
                    f"(paired bootstrap 95 % CI {100 * d['low']:+.1f} to {100 * d['high']:+.1f}), "
                    f"McNemar p = {m['p_value']:.3g}; params {t['params']}"
                )
    for note in out.get("notes", []):
        lines.append(f"\n- {note}")
    for s in out.get("postgres", []):
        lines.append(
            f"\nPostgreSQL, {s['workers']} worker(s), {s['seconds']:.0f} s: {s['trials']} trials, {s['trials_per_hour']} trials/hour"
        )
    if out.get("postgres_note"):
        lines.append(f"({out['postgres_note']})")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
