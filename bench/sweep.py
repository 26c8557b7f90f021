"""`tunerail sweep` against ``Trainer.hyperparameter_search(backend="optuna")`` at the same compute.

    python bench/sweep.py --seconds 150            # ~8 minutes on 2 shared CPU cores

Part 1, SmolLM2-135M (bundled) on a small Banking77 subset (``--rows`` train, ``--val`` validation,
answer-only loss, the same prompts through ``tunerail.prompting``, LoRA r/alpha from the space):

- ``tunerail``: ``tunerail.sweep`` with its defaults (TPE, median pruner, space by method), the
  budget share set so the sweep may spend ``--seconds``;
- ``trainer``: transformers' ``hyperparameter_search(backend="optuna")`` with its default space
  (lr 1e-6..1e-4 log, epochs 1..5, seed 1..40, batch 4..64) and ``timeout=--seconds`` (Optuna only
  checks it between trials). Same model via ``model_init`` + peft LoRA r 16.

Reported: best validation loss (answer tokens; the Trainer's mean over batches), seconds and share of
the allowed compute each used, trials run / pruned.

Part 2, the tiny random Llama (tests/train_tiny.py) on a real PostgreSQL (tests/pg.py starts one):
one worker vs two workers on one study for ``--pg-seconds``: completed+pruned trials per hour.
Results: ``bench/results/sweep.json`` and ``.md``. The CPU is shared: compare within a run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
SYSTEM = "Classify the customer's banking query. Answer with the intent label only."
MAX_LEN = 96


def _splits(tmp: Path, rows: int, val: int) -> tuple[Path, Path]:
    from train_tiny import banking_rows, write_jsonl

    return write_jsonl(tmp / "train.jsonl", banking_rows(rows)), write_jsonl(tmp / "validation.jsonl", banking_rows(val, offset=2000))


def _config(tmp: Path, seconds: float, base: str = "bundled:smollm2", **sweep):
    from tunerail.config import TunerailConfig

    return TunerailConfig.model_validate({
        "task": "classification", "model": {"base": base, "max_seq_length": MAX_LEN},
        "prompts": [{"system": SYSTEM, "template": "{prompt}"}],
        "train": {"epochs": 3, "probe_steps": 0, "seed": 13},
        "budget": {"max_hours": seconds / 3600 / 0.2, "search_share": 0.2},
        "sweep": {"trials": 50, **sweep}, "tracking": {"enabled": False}, "store": {"path": str(tmp / "store")}})


def run_tunerail(tmp: Path, splits: tuple[Path, Path], seconds: float) -> dict:
    from tunerail.sweep import sweep

    start = time.perf_counter()
    result = sweep(_config(tmp, seconds), train_data=splits[0], validation_data=splits[1], out_dir=tmp / "tunerail")
    wall = time.perf_counter() - start
    c = result.counts
    return {"best_val_loss": result.best_value, "best_params": result.best_params, "wall_seconds": round(wall, 1),
            "trial_seconds": result.share["used_seconds"], "allowed_seconds": seconds,
            "used_of_allowed": round(result.share["used_seconds"] / seconds, 3),
            "trials": len(result.trials), "pruned": c.get("PRUNED", 0), "budget_cut": c.get("budget_cut", 0),
            "complete": c.get("COMPLETE", 0)}


def run_trainer(tmp: Path, splits: tuple[Path, Path], seconds: float) -> dict:
    """HF Trainer + peft, ``hyperparameter_search(backend="optuna")`` with its default space."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments

    from tunerail.config import PromptTemplate
    from tunerail.models import load_causal_lm, load_tokenizer
    from tunerail.train.data import collate, load_split, tokenize_records

    cfg = _config(tmp, seconds)
    tok = load_tokenizer("bundled:smollm2")
    template = PromptTemplate(system=SYSTEM)

    def encode(path, role):
        rows = tokenize_records(load_split(path, cfg, role), tok, template, max_length=MAX_LEN)
        return [{"input_ids": e.input_ids, "answer_start": e.answer_start} for e in rows]

    class _Rows(torch.utils.data.Dataset):
        def __init__(self, rows): self.rows = rows
        def __len__(self): return len(self.rows)
        def __getitem__(self, i): return self.rows[i]

    train_ds, val_ds = _Rows(encode(splits[0], "train")), _Rows(encode(splits[1], "validation"))

    def collator(batch):
        from tunerail.train.data import Example

        out = collate([Example(b["input_ids"], b["answer_start"], len(b["input_ids"])) for b in batch], tok.pad_token_id)
        return dict(out)

    def model_init(trial=None):
        base = load_causal_lm("bundled:smollm2", dtype="float32")
        lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                          task_type="CAUSAL_LM")
        return get_peft_model(base, lora)

    args = TrainingArguments(output_dir=str(tmp / "hf"), eval_strategy="epoch", save_strategy="no", report_to=[],
                             logging_strategy="no", disable_tqdm=True, use_cpu=True, dataloader_num_workers=0,
                             remove_unused_columns=False)
    trainer = Trainer(model_init=model_init, args=args, train_dataset=train_ds, eval_dataset=val_ds, data_collator=collator)
    start = time.perf_counter()
    url = f"sqlite:///{tmp / 'hf.db'}"
    best = trainer.hyperparameter_search(direction="minimize", backend="optuna", n_trials=50, timeout=seconds,
                                         storage=url, study_name="hf")
    wall = time.perf_counter() - start
    import optuna

    trials = optuna.load_study(study_name="hf", storage=url).get_trials()
    return {"best_val_loss": best.objective, "best_params": best.hyperparameters, "wall_seconds": round(wall, 1),
            "allowed_seconds": seconds, "used_of_allowed": round(wall / seconds, 3), "trials": len(trials),
            "pruned": sum(t.state.name == "PRUNED" for t in trials),
            "note": "Optuna's timeout is checked between trials only; no pruning (no intermediate reports)"}


def _pg_workers(tmp: Path, url: str, workers: int, seconds: float) -> dict:
    from train_tiny import tiny_model_dir

    import optuna

    cfg = tmp / f"pg{workers}.yaml"
    cfg.write_text(json.dumps({
        "task": "classification", "model": {"base": str(tiny_model_dir()), "max_seq_length": 128},
        "train": {"bf16": False, "probe_steps": 0}, "budget": {"max_hours": 100.0},
        "tracking": {"enabled": False}, "store": {"path": str(tmp / "store")},
        "sweep": {"trials": 10_000, "heartbeat_seconds": 5, "space": {"batch_size": [8], "epochs": 2, "replay_ratio": None}}}))
    splits = _splits(tmp, 64, 16)
    study = f"bench-{workers}w-{os.getpid()}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "tunerail", "sweep", "--config", str(cfg), "--storage", url,
                               "--study", study, "--out", str(tmp / f"w{workers}-{i}"), "--train", str(splits[0]),
                               "--validation", str(splits[1])], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for i in range(workers)]
    storage = optuna.storages.RDBStorage(url)
    time.sleep(seconds)
    done = len(optuna.load_study(study_name=study, storage=storage).get_trials(
        states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)))
    for p in procs:
        p.kill()
        p.wait()
    return {"workers": workers, "seconds": seconds, "trials": done, "trials_per_hour": round(done * 3600 / seconds, 1)}


def run_postgres(tmp: Path, seconds: float) -> list[dict]:
    import pg

    gen = pg.postgres_url.__wrapped__() if hasattr(pg.postgres_url, "__wrapped__") else pg.postgres_url.__pytest_wrapped__.obj()
    url = next(gen)
    try:
        return [_pg_workers(tmp, url, n, seconds) for n in (1, 2)]
    finally:
        gen.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=150, help="compute each search may spend (part 1)")
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--val", type=int, default=32)
    parser.add_argument("--pg-seconds", type=float, default=60)
    parser.add_argument("--skip", nargs="*", default=[], choices=["tunerail", "trainer", "postgres"])
    args = parser.parse_args()
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    out: dict = {"command": " ".join(["python", "bench/sweep.py", *sys.argv[1:]]), "load_average": os.getloadavg(),
                 "cpus": os.cpu_count(), "rows": args.rows, "val": args.val}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        splits = _splits(tmp, args.rows, args.val)
        if "tunerail" not in args.skip:
            out["tunerail"] = run_tunerail(tmp, splits, args.seconds)
            print("tunerail", out["tunerail"], flush=True)
        if "trainer" not in args.skip:
            out["trainer"] = run_trainer(tmp, splits, args.seconds)
            print("trainer", out["trainer"], flush=True)
        if "postgres" not in args.skip:
            out["postgres"] = run_postgres(tmp, args.pg_seconds)
            print("postgres", out["postgres"], flush=True)
    out["load_average_end"] = os.getloadavg()
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "sweep.json").write_text(json.dumps(out, indent=2, default=str))
    lines = [f"# bench/sweep.py\n\n`{out['command']}` (load average {out['load_average']}, {out['cpus']} CPUs)\n",
             "| search | best val loss | seconds used / allowed | trials | pruned | budget-cut |", "|---|---|---|---|---|---|"]
    for name in ("tunerail", "trainer"):
        r = out.get(name)
        if r:
            used = r.get("trial_seconds", r["wall_seconds"])
            lines.append(f"| {name} | {r['best_val_loss']:.4f} | {used:.0f} / {r['allowed_seconds']:.0f} "
                         f"({100 * r['used_of_allowed']:.0f} %) | {r['trials'] or '?'} | {r['pruned']} | {r.get('budget_cut', '-')} |")
    for r in out.get("postgres", []):
        lines.append(f"\nPostgreSQL, {r['workers']} worker(s), {r['seconds']:.0f} s: {r['trials']} trials, {r['trials_per_hour']} trials/hour")
    (results / "sweep.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
