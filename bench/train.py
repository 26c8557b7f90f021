"""Training throughput: tunerail's guarded recipe vs a plain transformers ``Trainer`` + peft loop.

    python bench/train.py --steps 20            # ~5-10 minutes on 2 CPU cores

Same model (bundled SmolLM2-135M-Instruct), same LoRA (r 16, alpha 32, q/k/v/o, dropout 0), same
Banking77 prompts (shared ``tunerail.prompting``), same batch size, lr and loss mask. Each
setting runs in its own subprocess so peak memory (max RSS) is its own. Reported:

- tokens/s: real (non-pad) tokens per second of training-step time, first 2 steps excluded (warm-up);
  evaluations are excluded for both (the Trainer runs none here);
- padding waste: padded tokens / all tokens processed;
- peak RSS of the process.

Settings: ``tunerail`` (the default: ``bf16: auto``, bf16 autocast on a CPU with native bf16, shared-prefix
reuse on), ``tunerail-noprefix`` (the same without shared-prefix reuse),
``trainer-bf16`` (HF ``Trainer`` + peft with ``bf16=True``: the same precision), ``tunerail-fp32`` and
``trainer`` (both fp32, random batches padded to the longest row for the Trainer), ``trainer-grouped``
(``Trainer`` with ``group_by_length``), ``tunerail-autocast`` and ``tunerail-bf16`` (bf16 base weights).
The headline ratio compares ``tunerail`` with the ``Trainer`` at the precision ``bf16: auto`` picked
on this machine (``trainer-bf16`` where the CPU has native bf16, else fp32 ``trainer``).
Results: ``bench/results/train.json`` and ``train.md``.
The CPU is shared: compare settings of the same run only, and look at the load average recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "examples" / "banking77" / "train.csv"
SETTINGS = (
    "tunerail",
    "tunerail-noprefix",
    "trainer-bf16",
    "tunerail-fp32",
    "trainer",
    "trainer-grouped",
    "tunerail-autocast",
    "tunerail-bf16",
)
SYSTEM = "Classify the customer's banking query. Answer with the intent label only."


def _native_bf16() -> bool:
    from tunerail.train.lora import cpu_has_native_bf16

    return cpu_has_native_bf16()


def _default_settings() -> list[str]:
    same = "trainer-bf16" if _native_bf16() else "trainer"
    return ["tunerail", "tunerail-noprefix", same, "trainer-grouped"]


def _config(bf16, steps: int, batch: int, out: Path, shared_prefix: bool = True):
    from tunerail.config import TunerailConfig

    return TunerailConfig.model_validate(
        {
            "task": "classification",
            "model": {"base": "bundled:smollm2", "max_seq_length": 128},
            "prompts": [{"system": SYSTEM, "template": "{prompt}"}],
            "train": {
                "learning_rate": 5e-4,
                "epochs": 1,
                "batch_size": batch,
                "eval_steps": 10_000,
                "probe_steps": 0,
                "bf16": bf16,
                "seed": 13,
                "shared_prefix": shared_prefix,
            },
            "tracking": {"enabled": False},
            "store": {"path": str(out / "store")},
        }
    )


def _rows(n: int) -> list[dict]:
    import csv

    with open(DATA, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))[:n]


def run_tunerail(setting: str, steps: int, batch: int, out: Path) -> dict:
    from tunerail.train import train

    bf16 = {
        "tunerail": "auto",
        "tunerail-noprefix": "auto",
        "tunerail-fp32": False,
        "tunerail-bf16": True,
        "tunerail-autocast": "autocast",
    }[setting]
    cfg = _config(bf16, steps, batch, out, shared_prefix=setting != "tunerail-noprefix")
    rows = _rows(steps * batch)
    marks: list[tuple[int, float, int]] = []

    def progress(event: str, info: dict) -> None:
        if event == "step":
            marks.append((info["step"], time.perf_counter(), 0))

    # Validation: a handful of rows (the guard needs one); evaluated at step 0 and at the end only.
    result = train(cfg, train_data=rows, validation_data=_rows(1500)[-16:], out_dir=out / "run", progress=progress)
    # Real tokens per step, replayed from the recipe's own batch order.
    from tunerail.models import load_tokenizer
    from tunerail.train.data import length_grouped_batches, load_split, tokenize_records

    tok = load_tokenizer("bundled:smollm2")
    examples = tokenize_records(load_split(rows, cfg, "train"), tok, cfg.prompts[0], max_length=128)
    lengths = [e.length for e in examples]
    batches = length_grouped_batches(lengths, batch, seed=13, epoch=0)
    out = _summarise(marks, batches, lengths, result.padding_waste)
    out["shared_prefix_share"] = round(_prefix_share(examples, batches, tok.pad_token_id), 4) if cfg.train.shared_prefix else 0.0
    return out


def _prefix_share(examples, batches, pad_id: int) -> float:
    """Share of the real tokens that shared-prefix reuse does not recompute (prefix x (rows - 1))."""
    from tunerail.train.data import collate
    from tunerail.train.loss import shared_prefix_length

    saved = real = 0
    for b in batches:
        rows = [examples[i] for i in b]
        c = collate(rows, pad_id)
        saved += shared_prefix_length(c["input_ids"], c["labels"]) * (len(rows) - 1)
        real += sum(e.length for e in rows)
    return saved / real if real else 0.0


def run_trainer(setting: str, steps: int, batch: int, out: Path) -> dict:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from tunerail.models import load_tokenizer
    from tunerail.train.data import IGNORE_INDEX, load_split, padding_waste, tokenize_records
    from tunerail.train.lora import load_base_model, prepare_model

    cfg = _config(False, steps, batch, out)
    tok = load_tokenizer("bundled:smollm2")
    examples = tokenize_records(load_split(_rows(steps * batch), cfg, "train"), tok, cfg.prompts[0], max_length=128)
    features = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    model = prepare_model(load_base_model("bundled:smollm2", method="lora", bf16=False), method="lora", lora=cfg.train.lora, seed=13)
    seen: list[list[int]] = []

    from trainer_batches import recording_collator  # bench/ is on sys.path when run as a script

    collate = recording_collator(tok.pad_token_id, IGNORE_INDEX, seen)

    marks: list[tuple[int, float, int]] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            marks.append((state.global_step, time.perf_counter(), 0))

    args = TrainingArguments(
        output_dir=str(out / "trainer"),
        per_device_train_batch_size=batch,
        max_steps=steps,
        learning_rate=5e-4,
        lr_scheduler_type="cosine",
        warmup_steps=0.1,
        max_grad_norm=1.0,
        logging_steps=10_000,
        save_strategy="no",
        report_to=[],
        seed=13,
        use_cpu=True,
        train_sampling_strategy="group_by_length" if setting == "trainer-grouped" else "random",
        dataloader_num_workers=0,
        bf16=setting == "trainer-bf16",
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=features, data_collator=collate, callbacks=[Clock()]).train()
    batches, offset = [], 0
    for b in seen:
        batches.append(list(range(offset, offset + len(b))))
        offset += len(b)
    flat = [n for b in seen for n in b]
    return _summarise(marks, batches, flat, padding_waste(batches, flat))


def _summarise(marks: list[tuple[int, float, int]], batches: list[list[int]], lengths: list[int], waste: float) -> dict:
    """tokens/s over steps 3..N (warm-up excluded), from step-end timestamps."""
    times = {step: t for step, t, _ in marks}
    real = padded = 0
    seconds = 0.0
    for step in range(3, max(times) + 1):
        if step in times and step - 1 in times:
            batch = batches[step - 1]
            real += sum(lengths[i] for i in batch)
            padded += max(lengths[i] for i in batch) * len(batch)
            seconds += times[step] - times[step - 1]
    return {
        "steps_timed": max(times) - 2,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(real / seconds, 1),
        "padded_tokens_per_s": round(padded / seconds, 1),
        "padding_waste": round(waste, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="training steps per setting")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--settings", nargs="*", default=None, choices=SETTINGS)
    parser.add_argument("--worker", choices=SETTINGS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("/tmp/tunerail-bench-train"))
    args = parser.parse_args(argv)
    if args.worker:
        out = args.out / args.worker
        runner = run_trainer if args.worker.startswith("trainer") else run_tunerail
        print(json.dumps(runner(args.worker, args.steps, args.batch, out)))
        return 0
    import shutil

    shutil.rmtree(args.out, ignore_errors=True)
    args.settings = args.settings or _default_settings()
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    results: dict[str, dict] = {}
    for setting in args.settings:
        start = time.time()
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", setting, "--steps", str(args.steps), "--batch", str(args.batch), "--out", str(args.out)],
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:  # record and go on: one broken setting must not lose the others
            print(proc.stderr[-3000:], file=sys.stderr)
            results[setting] = {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
            continue
        results[setting] = json.loads(proc.stdout.strip().splitlines()[-1])
        results[setting]["wall_s"] = round(time.time() - start, 1)
        print(setting, json.dumps(results[setting]), flush=True)  # partial results survive a later failure
    print(f"{'setting':<20}{'tokens/s':>10}{'padded tok/s':>14}{'pad waste':>11}{'peak RSS MB':>13}")
    for name, r in results.items():
        if "error" in r:
            print(f"{name:<20}failed: {r['error']}")
            continue
        print(f"{name:<20}{r['tokens_per_s']:>10}{r['padded_tokens_per_s']:>14}{100 * r['padding_waste']:>10.1f}%{r['peak_rss_mb']:>13}")
    same = "trainer-bf16" if _native_bf16() else "trainer"
    pairs = (("tunerail", same), ("tunerail-noprefix", same), ("tunerail", "tunerail-noprefix"), ("tunerail-fp32", "trainer"))
    for ours, theirs in pairs:  # same precision
        if "tokens_per_s" in results.get(ours, {}) and "tokens_per_s" in results.get(theirs, {}):
            ratio = results[ours]["tokens_per_s"] / results[theirs]["tokens_per_s"]
            print(f"{ours} / {theirs} throughput: {ratio:.2f}x")
            results[f"ratio_{ours}_vs_{theirs}"] = round(ratio, 3)
    payload = {
        "command": "python bench/train.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "steps": args.steps,
        "batch": args.batch,
        "cpu_count": os.cpu_count(),
        "native_bf16": _native_bf16(),
        "load_average": os.getloadavg(),
        "results": results,
    }
    dest = REPO / "bench" / "results" / "train.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# bench/train.py\n",
        f"`{payload['command']}`: {args.steps} steps x batch {args.batch}, SmolLM2-135M + LoRA r16, "
        f"Banking77 prompts; {os.cpu_count()} CPUs, native bf16 {payload['native_bf16']}, load average "
        f"{', '.join(f'{x:.1f}' for x in payload['load_average'])} (shared machine: compare rows of one run only).\n",
        "| setting | tokens/s | padded tokens/s | padding waste | shared prefix | peak RSS MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        if isinstance(r, dict) and "tokens_per_s" in r:
            lines.append(
                f"| {name} | {r['tokens_per_s']} | {r['padded_tokens_per_s']} | {100 * r['padding_waste']:.1f} % | "
                f"{100 * r.get('shared_prefix_share', 0):.0f} % | {r['peak_rss_mb']} |"
            )
    lines += [""] + [f"- {k[6:].replace('_vs_', ' / ')}: {v:.2f}x" for k, v in results.items() if k.startswith("ratio_")]
    dest.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {dest} and {dest.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
