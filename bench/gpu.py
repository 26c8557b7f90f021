"""The CUDA path, measured: tunerail's trainer vs transformers ``Trainer`` + peft on one GPU, in one run.

    python bench/gpu.py --prepare        # on any machine with the venv: tokenizer + wheels into bench/.gpu_assets
    python bench/gpu.py                  # on the GPU (<= 8 min on one H100): bench/results/gpu.md + gpu.json
    python bench/gpu.py --dry-run        # CPU, tiny model, every code path, < 1 min; results to a temp folder

Needs only torch, transformers, peft and accelerate on the GPU machine, and no download: the models
are random-initialised from the configs of real architectures (Qwen2.5-0.5B and -1.5B shapes, their
152k vocabulary) and the data are the bundled Banking77 rows rendered with tunerail's prompt; the
tokenizer (SmolLM2's) and wheels of tunerail's own pure dependencies (pydantic) travel in
``bench/.gpu_assets`` (``--prepare``; carry that folder to the GPU machine).

Measured, every setting in this process, one after the other, peak memory reset between them:

- tokens/s: real (non-pad) tokens per second of training-step time, steps 3..N (warm-up excluded);
- MFU = 6 * N * tokens/s / peak dense bf16 FLOP/s of the device (N: all parameters of the base
  model; the 6N "model FLOPs" of a full fine-tune, attention FLOPs left out; LoRA does ~4N of
  real work, so MFU here is comparable between the two trainers, not a hardware utilisation);
- peak GPU memory (``torch.cuda.max_memory_allocated``);
- settings at equal hyperparameters (LoRA r16/alpha32 on q/k/v/o, bf16 base weights, same rows,
  batch, lr, answer-only loss): ``tunerail`` (default recipe, shared-prefix reuse on),
  ``tunerail-noprefix``, ``trainer`` (``Trainer`` with ``bf16=True``, ``group_by_length``), and the
  QLoRA pair where bitsandbytes imports; ``tunerail-fsdp`` (``train.distributed: fsdp`` under
  ``torchrun``, one rank);
- attention: the implementation transformers picked and whether SDPA's flash kernel runs;
- shared-prefix reuse on CUDA: same loss with and without it, and the tokens/s of each;
- batched generation of the eval step (``tunerail.eval.generate.generate``): new tokens/s at
  batch 1 and batch 32;
- ``pytest -m gpu``: the CUDA-only tests (tests/test_gpu.py).

``--dry-run`` runs the same code on CPU with a tiny Llama (2 layers, hidden 64), fp32, a few steps,
and writes ``gpu.json``/``gpu.md`` marked ``dry_run`` to ``--out`` (default: a temp folder), never
over the real results.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / "bench" / ".gpu_assets"
DATA = REPO / "examples" / "banking77" / "train.csv"
SYSTEM = "Classify the customer's banking query. Answer with the intent label only."
RESULTS = REPO / "bench" / "results"
WHEELS = ("pydantic", "pytest")  # tunerail's config needs pydantic; the gpu subset needs pytest
# import name -> distribution: the two above and their dependencies, installed only where missing.
CARRIED = {"pydantic": "pydantic", "pydantic_core": "pydantic-core", "annotated_types": "annotated-types"}
CARRIED.update({"typing_inspection": "typing-inspection", "typing_extensions": "typing-extensions", "pytest": "pytest"})
CARRIED.update({"pluggy": "pluggy", "iniconfig": "iniconfig", "pygments": "pygments", "packaging": "packaging"})
PYTHONS = ("3.10", "3.11", "3.12", "3.13")

# Published architectures (config.json of Qwen/Qwen2.5-0.5B and -1.5B), random-initialised here.
QWEN = {"model_type": "qwen2", "vocab_size": 151936, "max_position_embeddings": 32768, "rope_theta": 1_000_000.0}
QWEN.update({"rms_norm_eps": 1e-6, "tie_word_embeddings": True, "hidden_act": "silu", "use_sliding_window": False})
ARCHS: dict[str, dict[str, Any]] = {
    "qwen2.5-0.5b": {**QWEN, "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14},
    "qwen2.5-1.5b": {**QWEN, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12},
    "tiny-llama": {"model_type": "llama", "vocab_size": 49152, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2},
}
ARCHS["qwen2.5-0.5b"]["num_key_value_heads"] = ARCHS["qwen2.5-1.5b"]["num_key_value_heads"] = 2
ARCHS["tiny-llama"].update({"num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": True})

# Dense bf16 tensor-core peaks (no sparsity), from NVIDIA's data sheets.
PEAK_BF16 = {"H100 SXM": 989e12, "H100 NVL": 835e12, "H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12, "A100": 312e12}
PEAK_BF16.update({"L40S": 362e12, "A10G": 70e12, "L4": 121e12})


# -- assets ------------------------------------------------------------------------------------
def prepare(assets: Path) -> None:
    """Tokenizer, the tests' tiny model and wheels the GPU machine lacks (it has torch/transformers/peft/accelerate only)."""
    import shutil

    sys.path[:0] = [str(REPO), str(REPO / "tests")]
    from train_tiny import tiny_model_dir

    from tunerail.models import load_tokenizer

    load_tokenizer("bundled:smollm2").save_pretrained(assets / "tokenizer")
    tiny = tiny_model_dir()  # the bundled tokenizer is a GGUF package: the GPU tests read this copy (TUNERAIL_CACHE)
    shutil.copytree(tiny, assets / "cache" / "test-models" / tiny.name, dirs_exist_ok=True)
    for py in PYTHONS:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--python-version", py]
        cmd += ["--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64", "-d", str(assets / "wheels"), *WHEELS]
        subprocess.run(cmd, check=True)
    print(f"wrote {assets} ({sum(f.stat().st_size for f in assets.rglob('*') if f.is_file()) / 1e6:.1f} MB)")


def ensure_dependencies(assets: Path) -> list[str]:
    """Install missing pure dependencies from the carried wheels into ``assets/site`` (no network)."""
    import importlib.util

    missing = [pip for module, pip in CARRIED.items() if importlib.util.find_spec(module) is None]
    site = assets / "site"
    if missing and (assets / "wheels").is_dir():  # --no-deps: never shadow a package the image already has
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--find-links", str(assets / "wheels")]
        subprocess.run([*cmd, "--target", str(site), *missing], check=False)
    if site.is_dir():
        sys.path.insert(0, str(site))
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return missing


def tokenizer_dir(dry_run: bool) -> str:
    if (ASSETS / "tokenizer" / "tokenizer.json").exists():
        return str(ASSETS / "tokenizer")
    if dry_run:
        return "bundled:smollm2"
    raise SystemExit("no tokenizer in bench/.gpu_assets: run `python bench/gpu.py --prepare` first and carry that folder")


# -- models and data ---------------------------------------------------------------------------
class Bench:
    """One run's shared state: device, tokenizer folder, model folder per architecture, rows."""

    def __init__(self, dry_run: bool, steps: int, batch: int, work: Path):
        import torch

        self.dry_run, self.steps, self.batch, self.work = dry_run, steps, batch, work
        self.cuda = torch.cuda.is_available() and not dry_run
        self.device = torch.device("cuda" if self.cuda else "cpu")
        self.dtype = torch.bfloat16 if self.cuda else torch.float32
        self.tokenizer = tokenizer_dir(dry_run)
        self.rows = _rows(steps * batch)
        self.val_rows = _rows(1500)[-16:]

    def model_dir(self, arch: str) -> Path:
        """A folder with the architecture's config.json and the tokenizer (what model.base names)."""
        from tunerail.models import load_tokenizer

        folder = self.work / "models" / arch
        if not (folder / "config.json").exists():
            hf_config(arch).save_pretrained(folder)
            load_tokenizer(self.tokenizer).save_pretrained(folder)
        return folder

    def base_model(self, arch: str) -> Any:
        """Random-initialised, seeded, on the device, in the training dtype, with SDPA attention."""
        import torch
        from transformers import AutoModelForCausalLM

        torch.manual_seed(13)
        with torch.device(self.device):
            model = AutoModelForCausalLM.from_config(hf_config(arch), dtype=self.dtype, attn_implementation="sdpa")
        return model

    def config(self, arch: str, out: Path, **train: Any) -> Any:
        from tunerail.config import TunerailConfig

        settings = {"learning_rate": 2e-4, "epochs": 1, "batch_size": self.batch, "eval_steps": 10_000, "probe_steps": 0}
        settings.update({"bf16": self.cuda, "seed": 13, **train})
        return TunerailConfig.model_validate(
            {
                "task": "classification",
                "model": {"base": str(self.model_dir(arch)), "max_seq_length": 256},
                "prompts": [{"system": SYSTEM, "template": "{prompt}"}],
                "train": settings,
                "tracking": {"enabled": False},
                "store": {"path": str(out / "store")},
            }
        )


def hf_config(arch: str) -> Any:
    from transformers import AutoConfig

    spec = dict(ARCHS[arch])
    return AutoConfig.for_model(spec.pop("model_type"), **spec)


def _rows(n: int) -> list[dict]:
    import csv

    with open(DATA, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))[:n]


# -- measurements ------------------------------------------------------------------------------
def measured(run: Callable[[], dict[str, Any]], device: Any) -> dict[str, Any]:
    """Run one setting with the peak-memory counter reset; an exception becomes the row's ``error``."""
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    _reset_accelerate()
    start = time.perf_counter()
    try:
        row = run()
    except Exception as exc:  # noqa: BLE001 - one broken setting must not lose the others
        row = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"}
    row["wall_s"] = round(time.perf_counter() - start, 1)
    if device.type == "cuda":
        row["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    gc.collect()
    return row


def _reset_accelerate() -> None:
    """Trainer and tunerail each build an Accelerator; its process-wide state must not leak between settings."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def rate(marks: dict[int, float], lengths_by_step: dict[int, list[int]]) -> dict[str, Any]:
    """tokens/s over steps 3..N from step-end timestamps (real and padded tokens)."""
    real = padded = 0
    seconds = 0.0
    for step in sorted(marks):
        if step >= 3 and step - 1 in marks and step in lengths_by_step:
            rows = lengths_by_step[step]
            real, padded = real + sum(rows), padded + max(rows) * len(rows)
            seconds += marks[step] - marks[step - 1]
    if seconds <= 0:
        return {"error": "fewer than 3 steps timed"}
    return {
        "steps_timed": len([s for s in marks if s >= 3]),
        "tokens_per_s": round(real / seconds, 1),
        "padded_tokens_per_s": round(padded / seconds, 1),
    }


def run_tunerail(bench: Bench, arch: str, *, shared_prefix: bool = True, method: str = "lora") -> dict[str, Any]:
    """tunerail's public API (``tunerail.train``) with the random model handed in through ``TrainHooks``."""
    from tunerail.train.data import length_grouped_batches, load_split, tokenize_records
    from tunerail.train.recipe import TrainHooks, train

    out = bench.work / f"tunerail-{arch}-{method}-{int(shared_prefix)}"
    cfg = bench.config(arch, out, shared_prefix=shared_prefix, method=method)
    marks: dict[int, float] = {}

    def progress(event: str, info: dict) -> None:
        if event == "step":
            marks[info["step"]] = time.perf_counter()  # after the step's loss reached the host: synchronised

    hooks = TrainHooks(base_model=bench.base_model(arch) if method == "lora" else None)
    result = train(cfg, train_data=bench.rows, validation_data=bench.val_rows, out_dir=out / "run", progress=progress, hooks=hooks)
    tok = _tokenizer(bench)
    examples = tokenize_records(load_split(bench.rows, cfg, "train"), tok, cfg.prompts[0], max_length=256)
    lengths = [e.length for e in examples]
    batches = length_grouped_batches(lengths, bench.batch, seed=13, epoch=0)
    row = rate(marks, {i + 1: [lengths[j] for j in b] for i, b in enumerate(batches)})
    row.update(final_train_loss=result.history[-1]["train_loss"], params=result.parameters["total"], shared_prefix=shared_prefix)
    return row


def run_trainer(bench: Bench, arch: str, *, method: str = "lora") -> dict[str, Any]:
    """transformers ``Trainer`` + peft at the same settings (bf16 autocast over bf16 base weights on CUDA)."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from tunerail.train.data import IGNORE_INDEX, load_split, tokenize_records
    from tunerail.train.lora import load_base_model, prepare_model

    out = bench.work / f"trainer-{arch}-{method}"
    cfg = bench.config(arch, out, method=method)
    tok = _tokenizer(bench)
    examples = tokenize_records(load_split(bench.rows, cfg, "train"), tok, cfg.prompts[0], max_length=256)
    features = [{"input_ids": e.input_ids, "labels": [IGNORE_INDEX] * e.answer_start + e.input_ids[e.answer_start :]} for e in examples]
    base = bench.base_model(arch) if method == "lora" else load_base_model(cfg.model.base, method=method, bf16=True)
    model = prepare_model(base, method=method, lora=cfg.train.lora, seed=13)
    seen: list[list[int]] = []

    from trainer_batches import recording_collator  # bench/ is on sys.path when run as a script

    collate = recording_collator(tok.pad_token_id, IGNORE_INDEX, seen)

    marks: dict[int, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            _sync(bench.device)
            marks[state.global_step] = time.perf_counter()

    args = TrainingArguments(
        output_dir=str(out / "trainer"),
        per_device_train_batch_size=bench.batch,
        max_steps=bench.steps,
        learning_rate=2e-4,
        lr_scheduler_type="cosine",
        warmup_steps=0.1,
        max_grad_norm=1.0,
        logging_steps=10_000,
        save_strategy="no",
        report_to=[],
        seed=13,
        use_cpu=not bench.cuda,
        train_sampling_strategy="group_by_length",
        dataloader_num_workers=0,
        bf16=bench.cuda,
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=features, data_collator=collate, callbacks=[Clock()])
    trainer.train()
    row = rate(marks, {i + 1: b for i, b in enumerate(seen)})
    row["params"] = sum(p.numel() for p in model.parameters())
    del trainer, model, base
    return row


def _tokenizer(bench: Bench) -> Any:
    from tunerail.models import load_tokenizer

    return load_tokenizer(bench.tokenizer)


def attention_report(bench: Bench) -> dict[str, Any]:
    """Which attention transformers uses, and whether SDPA's flash kernel accepts this model's shapes."""
    import torch
    import torch.nn.functional as F

    model = bench.base_model("tiny-llama" if bench.dry_run else "qwen2.5-0.5b")
    out: dict[str, Any] = {"attn_implementation": model.config._attn_implementation}
    heads, dim = model.config.num_attention_heads, model.config.hidden_size // model.config.num_attention_heads
    q = torch.randn(2, heads, 128, dim, device=bench.device, dtype=bench.dtype)
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            F.scaled_dot_product_attention(q, q, q, is_causal=True)
        out["sdpa_flash"] = True
    except RuntimeError as exc:
        out["sdpa_flash"] = False
        out["sdpa_flash_reason"] = str(exc).splitlines()[0][:200]
    del model
    return out


def prefix_equivalence(bench: Bench) -> dict[str, Any]:
    """The recipe's loss with the shared prefix run once equals the full forward, on this device."""
    import torch

    from tunerail.train.data import collate, load_split, tokenize_records
    from tunerail.train.loss import loss_model, shared_prefix_length

    arch = "tiny-llama" if bench.dry_run else "qwen2.5-0.5b"
    cfg = bench.config(arch, bench.work / "prefix")
    tok = _tokenizer(bench)
    examples = tokenize_records(load_split(bench.rows[:8], cfg, "train"), tok, cfg.prompts[0], max_length=256)
    batch = {k: v.to(bench.device) for k, v in collate(examples, tok.pad_token_id).items()}
    model = bench.base_model(arch).float()  # fp32: the comparison is about the computation, not bf16 rounding
    losses = {}
    for shared in (False, True):
        loss_sum, n = loss_model(model, answer_only_head=True, autocast_bf16=False, shared_prefix=shared)(**batch)
        losses[shared] = float((loss_sum / n).detach())
    prefix = shared_prefix_length(batch["input_ids"], batch["labels"])
    same = abs(losses[True] - losses[False]) <= 1e-4 * abs(losses[False])
    del model
    torch.manual_seed(13)
    return {"prefix_tokens": prefix, "loss_full": losses[False], "loss_shared": losses[True], "same_loss": same}


def generation(bench: Bench) -> dict[str, Any]:
    """New tokens/s of the eval step's batched greedy generation at batch 1 and 32 (same prompts, rows x max_new_tokens)."""
    from tunerail.eval.generate import LoadedModel, generate
    from tunerail.prompting import pick_template, prompt_for

    arch = "tiny-llama" if bench.dry_run else "qwen2.5-0.5b"
    cfg = bench.config(arch, bench.work / "generate")
    tok = _tokenizer(bench)
    tok.padding_side = "left"
    template = pick_template(cfg)
    n, new = (8, 4) if bench.dry_run else (64, 32)
    prompts = [prompt_for(tok, r["text"], template) for r in bench.rows[:n]]
    model = bench.base_model(arch).eval()
    model.generation_config.min_new_tokens = new  # a random model stops at EOS at once: every row makes `new` tokens
    lm = LoadedModel(model, tok, arch, "random-init")
    out: dict[str, Any] = {"rows": n, "max_new_tokens": new}
    for size in (1, 32):
        generate(lm, prompts[:2], max_new_tokens=2, batch_size=size)  # warm-up
        _sync(bench.device)
        start = time.perf_counter()
        generate(lm, prompts, max_new_tokens=new, batch_size=size)
        _sync(bench.device)
        out[f"batch{size}_tokens_per_s"] = round(n * new / (time.perf_counter() - start), 1)
    out["speedup"] = round(out["batch32_tokens_per_s"] / max(out["batch1_tokens_per_s"], 1e-9), 2)
    del model, lm
    return out


def run_fsdp(bench: Bench, arch: str) -> dict[str, Any]:
    """``train.distributed: fsdp`` under ``torchrun`` (one rank per GPU here); on CPU the config error is the result."""
    if not bench.cuda:
        from tunerail.errors import TunerailError
        from tunerail.train.distributed import accelerator_kwargs

        try:
            accelerator_kwargs("fsdp", cuda=False)
        except TunerailError as exc:
            return {"refused_on_cpu": str(exc.problems[0].message)}
        return {"error": "fsdp was not refused on CPU"}
    import torch

    out = bench.work / f"fsdp-{arch}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(torch.cuda.device_count())]
    cmd += [__file__, "--fsdp-worker", arch, "--steps", str(bench.steps), "--batch", str(bench.batch), "--work", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fsdp_worker(bench: Bench, arch: str) -> None:
    """One FSDP rank: train, then report the strategy accelerate ran and the rate (rank 0 prints)."""
    import torch

    from tunerail.train.recipe import TrainHooks, TrainRecipe

    cfg = bench.config(arch, bench.work, distributed="fsdp")
    marks: dict[int, float] = {}

    def progress(event: str, info: dict) -> None:
        if event == "step":
            marks[info["step"]] = time.perf_counter()

    recipe = TrainRecipe(
        cfg, out_dir=bench.work / "run", resume=False, store=None, progress=progress, hooks=TrainHooks(base_model=bench.base_model(arch))
    )
    recipe.setup(bench.rows, bench.val_rows)
    recipe.train()
    result = recipe.finish()
    strategy = str(recipe.accelerator.distributed_type)
    recipe.cleanup()
    if recipe.main:
        steps = sorted(marks)
        seconds = marks[steps[-1]] - marks[steps[1]] if len(steps) > 2 else None
        adapter = (result.adapter_dir / "adapter_model.safetensors").exists()
        row = {
            "distributed_type": strategy,
            "steps": result.actual["steps"],
            "adapter_written": adapter,
            "weights_sha256": result.weights_sha256,
        }
        row.update(
            seconds_steps_2_to_n=round(seconds, 3) if seconds else None, peak_gpu_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1)
        )
        print(json.dumps(row))


def gpu_tests(dry_run: bool) -> dict[str, Any]:
    """``pytest -m gpu`` on tests/test_gpu.py (its CUDA tests skip without a GPU)."""
    import importlib.util

    importlib.invalidate_caches()
    if importlib.util.find_spec("pytest") is None:
        return {"error": "pytest is not installed (carry bench/.gpu_assets, made by --prepare)"}
    if dry_run:
        return {"skipped": "dry run (tests/test_gpu.py runs this script; not recursing)"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", str(REPO / "tests" / "test_gpu.py")]
    if (ASSETS / "cache").is_dir():
        os.environ["TUNERAIL_CACHE"] = str(ASSETS / "cache")
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=240,
        env=dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", "") + os.pathsep + str(REPO)),
    )
    return {"returncode": proc.returncode, "summary": (proc.stdout.strip().splitlines() or [""])[-1]}


def device_report(bench: Bench) -> dict[str, Any]:
    import torch

    if not bench.cuda:
        return {"name": "cpu (dry run)", "peak_bf16_flops": None, "torch": torch.__version__}
    name = torch.cuda.get_device_name(0)
    peak = next((v for k, v in PEAK_BF16.items() if k.lower() in name.lower() and all(w in name for w in k.split())), None)
    return {
        "name": name,
        "count": torch.cuda.device_count(),
        "peak_bf16_flops": peak,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }


def mfu(row: dict[str, Any], peak: float | None) -> float | None:
    if "tokens_per_s" not in row or not peak or not row.get("params"):
        return None
    return round(6 * row["params"] * row["tokens_per_s"] / peak, 4)


# -- main --------------------------------------------------------------------------------------
def run_all(bench: Bench) -> dict[str, Any]:
    """Every measurement; each row records its own error instead of stopping the run."""
    import importlib.util

    dev = device_report(bench)
    archs = ["tiny-llama"] if bench.dry_run else ["qwen2.5-0.5b", "qwen2.5-1.5b"]
    training: dict[str, dict[str, Any]] = {}
    for arch in archs:
        training[f"{arch}/tunerail"] = measured(lambda a=arch: run_tunerail(bench, a), bench.device)
        training[f"{arch}/trainer"] = measured(lambda a=arch: run_trainer(bench, a), bench.device)
    first = archs[0]
    training[f"{first}/tunerail-noprefix"] = measured(lambda: run_tunerail(bench, first, shared_prefix=False), bench.device)
    if bench.cuda and importlib.util.find_spec("bitsandbytes") is not None:
        weights = bench.model_dir(first)
        bench.base_model(first).save_pretrained(weights)  # QLoRA quantises on load: it needs the weights on disk
        training[f"{first}/tunerail-qlora"] = measured(lambda: run_tunerail(bench, first, method="qlora"), bench.device)
        training[f"{first}/trainer-qlora"] = measured(lambda: run_trainer(bench, first, method="qlora"), bench.device)
    else:
        training[f"{first}/qlora"] = {"skipped": "bitsandbytes does not import here" if bench.cuda else "needs CUDA"}
    for row in training.values():
        row["mfu"] = mfu(row, dev["peak_bf16_flops"])
    ratios = {}
    for arch in archs:
        ours, theirs = training[f"{arch}/tunerail"], training[f"{arch}/trainer"]
        if "tokens_per_s" in ours and "tokens_per_s" in theirs:
            ratios[arch] = round(ours["tokens_per_s"] / theirs["tokens_per_s"], 3)
    return {
        "dry_run": bench.dry_run,
        "device": dev,
        "steps": bench.steps,
        "batch": bench.batch,
        "mfu_formula": "6 * N_total_params * real_tokens_per_s / peak dense bf16 FLOP/s (attention FLOPs not counted)",
        "training": training,
        "tunerail_vs_trainer_tokens_per_s": ratios,
        "attention": measured(lambda: attention_report(bench), bench.device),
        "shared_prefix_cuda": measured(lambda: prefix_equivalence(bench), bench.device),
        "generation": measured(lambda: generation(bench), bench.device),
        "fsdp": measured(lambda: run_fsdp(bench, first), bench.device),
        "pytest_gpu": gpu_tests(bench.dry_run),
    }


FIELDS = ("dry_run", "device", "mfu_formula", "training", "tunerail_vs_trainer_tokens_per_s", "attention", "shared_prefix_cuda")
FIELDS += ("generation", "fsdp", "pytest_gpu", "command", "seconds")


def write(payload: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    dev = payload["device"]
    lines = [
        "# bench/gpu.py" + (" (DRY RUN: CPU, tiny model; not GPU figures)" if payload["dry_run"] else ""),
        "",
        f"`{payload['command']}` on **{dev['name']}** (torch {dev['torch']}), {payload['steps']} steps x batch {payload['batch']}, "
        f"{payload['seconds']} s. MFU = {payload['mfu_formula']}.",
        "",
        "| setting | tokens/s | MFU | peak GPU MB | note |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, row in payload["training"].items():
        mfu_text = f"{100 * row['mfu']:.1f} %" if row.get("mfu") is not None else "-"
        note = row.get("error") or row.get("skipped") or ""
        lines.append(f"| {name} | {row.get('tokens_per_s', '-')} | {mfu_text} | {row.get('peak_gpu_mb', '-')} | {note} |")
    lines += ["", *(f"- tunerail / Trainer tokens/s, {a}: {r:.2f}x" for a, r in payload["tunerail_vs_trainer_tokens_per_s"].items())]
    for key in ("attention", "shared_prefix_cuda", "generation", "fsdp", "pytest_gpu"):
        lines.append(f"- {key}: `{json.dumps(payload[key], default=str)}`")
    (out / "gpu.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model, a few steps: check every code path")
    parser.add_argument("--prepare", action="store_true", help="write the tokenizer and wheels to bench/.gpu_assets")
    parser.add_argument("--steps", type=int, default=None, help="training steps per setting (default 40; dry run 4)")
    parser.add_argument("--batch", type=int, default=None, help="rows per step (default 32; dry run 4)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results; dry run: a temp folder)")
    parser.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--fsdp-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prepare:
        prepare(ASSETS)
        return 0
    ensure_dependencies(ASSETS)
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    steps = args.steps or (4 if args.dry_run else 40)
    batch = args.batch or (4 if args.dry_run else 32)
    if args.fsdp_worker:
        fsdp_worker(Bench(False, steps, batch, args.work), args.fsdp_worker)
        return 0
    out = args.out or (Path(tempfile.mkdtemp(prefix="tunerail-gpu-dry-")) if args.dry_run else RESULTS)
    if args.dry_run and out.resolve() == RESULTS.resolve():
        raise SystemExit("--dry-run never writes over bench/results (the GPU figures): pass another --out")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tunerail-gpu-work-") as work:
        payload = run_all(Bench(args.dry_run, steps, batch, Path(work)))
    payload["command"] = "python bench/gpu.py " + " ".join(argv if argv is not None else sys.argv[1:])
    payload["seconds"] = round(time.perf_counter() - start, 1)
    write(payload, out)
    print(f"wrote {out / 'gpu.json'} and {out / 'gpu.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
