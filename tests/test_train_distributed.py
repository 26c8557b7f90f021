"""Several processes train as one: 2 gloo ranks give one process's loss curve and weights.

Two processes with gradient accumulation 1 see, step by step, the micro-batches one process sees
with gradient accumulation 2 (``_micro_batch(first + k * world + rank)``) and average the same two
gradients, so the curves and weights must agree to float tolerance (only summation order differs).
Each rank dumps its OWN in-memory weights (not the file rank 0 wrote), so rank 1 agreeing proves
gradient synchronisation. Run as a script, this file is the per-rank training helper.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent


def _env() -> dict[str, str]:
    return dict(
        os.environ,
        PYTHONPATH=f"{REPO}{os.pathsep}{HERE.parent}",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch(out: Path, splits: tuple[Path, Path], *, processes: int, accumulation: int, flags: tuple[str, ...] = ()) -> subprocess.Popen:
    args = [str(HERE), str(out), str(splits[0]), str(splits[1]), str(accumulation), *flags]
    if processes == 1:
        cmd = [sys.executable, *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_addr", "127.0.0.1"]
        cmd += ["--master_port", str(_free_port()), *args]
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _curve(history: list[dict]) -> list[tuple]:
    return [(h["step"], h["tokens"], h["train_loss"], h["val_loss"]) for h in history]


def _assert_same_curve(a: list[dict], b: list[dict]) -> None:
    assert [(s, t) for s, t, *_ in _curve(a)] == [(s, t) for s, t, *_ in _curve(b)]
    for (_, _, ta, va), (_, _, tb, vb) in zip(_curve(a), _curve(b)):
        assert (ta is None) == (tb is None) and (ta is None or ta == pytest.approx(tb, rel=1e-4, abs=1e-5))
        assert va == pytest.approx(vb, rel=1e-4, abs=1e-5)


@pytest.fixture
def splits(tmp_path: Path) -> tuple[Path, Path]:
    from train_tiny import banking_rows, tiny_model_dir, write_jsonl

    tiny_model_dir()  # build the cached model once, before subprocesses race for it
    return (
        write_jsonl(tmp_path / "train.jsonl", banking_rows(96)),
        write_jsonl(tmp_path / "validation.jsonl", banking_rows(24, offset=1000)),
    )


def test_two_ddp_processes_match_one_process(tmp_path, splits):
    import torch
    from safetensors.torch import load_file

    single = _launch(tmp_path / "one" / "run", splits, processes=1, accumulation=2)
    ddp = _launch(tmp_path / "ddp" / "run", splits, processes=2, accumulation=1)
    assert ddp.wait(timeout=300) == 0, ddp.stderr.read()[-3000:]
    assert single.wait(timeout=300) == 0, single.stderr.read()[-3000:]
    one = json.loads((tmp_path / "one" / "run" / "rank0.json").read_text())
    ranks = [json.loads((tmp_path / "ddp" / "run" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert one["processes"] == 1 and [r["processes"] for r in ranks] == [2, 2]
    assert len(one["history"]) > 3 and one["history"][-1]["val_loss"] < one["history"][0]["val_loss"]
    for rank in ranks:
        _assert_same_curve(rank["history"], one["history"])
    reference = load_file(str(tmp_path / "one" / "run" / "rank0.weights.safetensors"))
    trained = [k for k in reference if ".lora_B." in k]
    assert trained and any(reference[k].abs().max() > 0 for k in trained)  # B starts at zero: training moved it
    for r in (0, 1):
        weights = load_file(str(tmp_path / "ddp" / "run" / f"rank{r}.weights.safetensors"))
        assert weights.keys() == reference.keys()
        for name, tensor in reference.items():  # LoRA A/B and the merged W + scale * B @ A of every adapted layer
            torch.testing.assert_close(weights[name], tensor, rtol=1e-4, atol=1e-5, msg=f"rank {r}: {name}")
    # One writer: rank 0's checkpoints only, the latest state and the best adapter.
    kept = sorted(p.name.split("-step-")[0] for p in (tmp_path / "ddp" / "run" / "checkpoints").iterdir() if "-step-" in p.name)
    assert kept in (["best", "state"], ["state"]) and (tmp_path / "ddp" / "run" / "adapter" / "adapter_config.json").exists()


@pytest.mark.slow
def test_fsdp_ranks_match_one_process_across_a_resume(tmp_path, splits):
    # PyTorch runs FSDP1 on CPU/gloo; accelerate only routes its FSDP plugin to GPUs, so the helper
    # (--fsdp) flips accelerate's distributed type, and the recipe's own FSDP path runs: peft's wrap
    # policy, use_orig_params, gathered weights and optimizer state, FSDP's gradient clipping.
    import torch
    from safetensors.torch import load_file

    single = _launch(tmp_path / "one" / "run", splits, processes=1, accumulation=2)
    out = tmp_path / "fsdp" / "run"
    first = _launch(out, splits, processes=2, accumulation=1, flags=("--fsdp", "--stop-at", "5"))
    assert first.wait(timeout=300) == 0, first.stderr.read()[-3000:]
    stopped = json.loads((out / "rank0.json").read_text())
    assert stopped["history"][-1]["step"] == 5 and stopped["distributed_type"].endswith("FSDP")
    resumed = _launch(out, splits, processes=2, accumulation=1, flags=("--fsdp", "--resume"))
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()[-3000:]
    assert single.wait(timeout=300) == 0, single.stderr.read()[-3000:]
    one = json.loads((tmp_path / "one" / "run" / "rank0.json").read_text())
    reference = load_file(str(tmp_path / "one" / "run" / "rank0.weights.safetensors"))
    for r in (0, 1):
        rank = json.loads((out / f"rank{r}.json").read_text())
        _assert_same_curve(rank["history"], one["history"])  # resumed from step 5: optimizer state and weights came back
        weights = load_file(str(out / f"rank{r}.weights.safetensors"))
        assert weights.keys() == {k for k in reference if not k.endswith(".merged")}
        for name, tensor in weights.items():
            torch.testing.assert_close(tensor, reference[name], rtol=1e-4, atol=1e-5, msg=f"rank {r}: {name}")
    # Rank 0 wrote the gathered adapter, whole: peft loads it and it holds the single-process weights.
    from peft import PeftModel
    from train_tiny import tiny_model_dir

    from tunerail.train.lora import load_base_model

    loaded = PeftModel.from_pretrained(load_base_model(str(tiny_model_dir()), method="lora", bf16=False), str(out / "adapter"))
    lora = {n: p for n, p in loaded.named_parameters() if ".lora_" in n}
    assert lora.keys() == weights.keys()
    for name, tensor in lora.items():
        torch.testing.assert_close(tensor.detach(), reference[name], rtol=1e-4, atol=1e-5, msg=name)


def test_fsdp_on_cpu_is_a_clear_config_error(tmp_path, splits):
    # accelerate applies its FSDP plugin to multi-GPU runs only; on CPU ranks it would silently run DDP.
    from train_tiny import tiny_config

    from tunerail.errors import TunerailError
    from tunerail.train import train

    cfg = tiny_config(tmp_path, distributed="fsdp")
    with pytest.raises(TunerailError) as info:
        train(cfg, train_data=splits[0], validation_data=splits[1], out_dir=tmp_path / "run")
    problem = info.value.problems[0]
    assert problem.field == "train.distributed" and "CUDA" in problem.message and "ddp" in problem.fix
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_deepspeed_without_the_package_is_a_clear_config_error():
    import importlib.util

    from tunerail.errors import TunerailError
    from tunerail.train.distributed import accelerator_kwargs

    if importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("deepspeed is installed here")
    with pytest.raises(TunerailError) as info:
        accelerator_kwargs("deepspeed", cuda=False)
    assert info.value.problems[0].field == "train.distributed" and "pip install deepspeed" in info.value.problems[0].fix


def test_distributed_is_a_documented_choice():
    from pydantic import ValidationError

    from tunerail.config import TrainConfig

    assert TrainConfig().distributed == "ddp"
    assert "use_orig_params" in TrainConfig.model_fields["distributed"].description
    with pytest.raises(ValidationError):
        TrainConfig(distributed="zero3")


def _merged(model) -> dict:
    """Every adapted layer's merged weight W + scale * B @ A, computed from this rank's memory."""
    from peft.tuners.lora import LoraLayer

    return {
        f"{name}.merged": (module.base_layer.weight + module.get_delta_weight("default")).detach().cpu().contiguous()
        for name, module in model.named_modules()
        if isinstance(module, LoraLayer)
    }


def _fsdp_on_cpu() -> None:
    """Test-only: let accelerate's FSDP plugin act on CPU ranks (accelerate applies it to GPUs only)."""
    import accelerate
    import torch
    from accelerate.utils import DistributedType

    from tunerail.train import distributed

    plain = distributed.accelerator_kwargs
    distributed.accelerator_kwargs = lambda strategy, **kw: plain(strategy, **{**kw, "cuda": True})  # type: ignore[assignment]

    class FsdpOnCpu(accelerate.Accelerator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if kwargs.get("fsdp_plugin") is not None:
                self.state.distributed_type = DistributedType.FSDP
                self.state.fsdp_plugin = kwargs["fsdp_plugin"]
                self.state.device = torch.device("cpu")  # FSDP compares it with the CPU's current device ("cpu", no index)

    accelerate.Accelerator = FsdpOnCpu  # type: ignore[misc]


def main(argv: list[str]) -> None:
    """``[torchrun ...] test_train_distributed.py OUT TRAIN VAL ACCUMULATION [--fsdp] [--stop-at N] [--resume]``.

    One tiny run; each rank dumps its own in-memory weights (LoRA and merged) and its history.
    """
    import torch
    from safetensors.torch import save_file
    from train_tiny import tiny_config

    from tunerail.train.lora import load_base_model
    from tunerail.train.recipe import TrainHooks, TrainRecipe

    torch.set_num_threads(1)
    out, train_path, val_path, accumulation = Path(argv[0]), Path(argv[1]), Path(argv[2]), int(argv[3])
    fsdp = "--fsdp" in argv
    if fsdp:
        _fsdp_on_cpu()
    stop_at = int(argv[argv.index("--stop-at") + 1]) if "--stop-at" in argv else None
    cfg = tiny_config(
        out.parent, learning_rate=1e-3, epochs=5 / 3, patience=10, gradient_accumulation=accumulation, distributed="fsdp" if fsdp else "ddp"
    )
    base = load_base_model(cfg.model.base, method="lora", bf16=False)  # peft injects the adapter into it: read after training
    hooks = TrainHooks(base_model=base, on_step=lambda step, evaluating: "stopped" if step == stop_at else None)
    recipe = TrainRecipe(cfg, out_dir=out, resume="--resume" in argv, store=None, progress=None, hooks=hooks)
    recipe.setup(train_path, val_path)
    recipe.train()
    result = recipe.finish()
    from tunerail.train.distributed import trainable_weights

    weights = trainable_weights(recipe.accelerator, recipe.loss_model)  # FSDP: gathered from every rank's shard
    merged = {} if fsdp else _merged(base)  # FSDP holds shards of the base weights: the LoRA weights are compared
    rank = int(os.environ.get("RANK", "0"))
    info = {
        "history": result.history,
        "processes": result.actual["processes"],
        "distributed_type": str(recipe.accelerator.distributed_type),
    }
    recipe.cleanup()
    save_file({**weights, **merged}, str(out / f"rank{rank}.weights.safetensors"))
    (out / f"rank{rank}.json").write_text(json.dumps(info))


if __name__ == "__main__":
    main(sys.argv[1:])
