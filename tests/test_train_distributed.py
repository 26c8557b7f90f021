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


def _launch(out: Path, splits: tuple[Path, Path], *, processes: int, accumulation: int) -> subprocess.Popen:
    args = [str(HERE), str(out), str(splits[0]), str(splits[1]), str(accumulation)]
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


def main(argv: list[str]) -> None:
    """``[torchrun ...] test_train_distributed.py OUT TRAIN VAL ACCUMULATION``: one tiny run; each rank dumps its weights."""
    import torch
    from safetensors.torch import save_file
    from train_tiny import tiny_config

    from tunerail.train.lora import load_base_model
    from tunerail.train.recipe import TrainHooks, train

    torch.set_num_threads(1)
    out, train_path, val_path, accumulation = Path(argv[0]), Path(argv[1]), Path(argv[2]), int(argv[3])
    cfg = tiny_config(out.parent, learning_rate=1e-3, epochs=5 / 3, patience=10, gradient_accumulation=accumulation)
    base = load_base_model(cfg.model.base, method="lora", bf16=False)  # peft injects the adapter into it: read after training
    result = train(cfg, train_data=train_path, validation_data=val_path, out_dir=out, hooks=TrainHooks(base_model=base))
    rank = int(os.environ.get("RANK", "0"))
    weights = {n: p.detach().cpu().contiguous() for n, p in base.named_parameters() if p.requires_grad}
    save_file({**weights, **_merged(base)}, str(out / f"rank{rank}.weights.safetensors"))
    (out / f"rank{rank}.json").write_text(json.dumps({"history": result.history, "processes": result.actual["processes"]}))


if __name__ == "__main__":
    main(sys.argv[1:])
