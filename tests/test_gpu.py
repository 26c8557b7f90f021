"""The CUDA path: tests marked ``gpu`` run only where CUDA is (``pytest -m gpu``, run by bench/gpu.py).

The CPU test runs ``bench/gpu.py --dry-run`` so CI exercises every code path of the GPU bench.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from train_tiny import banking_rows, tiny_config

REPO = Path(__file__).resolve().parent.parent


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.slow
def test_dry_run_of_the_gpu_bench_writes_every_field(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu.py"), "--dry-run", "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sys.path.insert(0, str(REPO / "bench"))
    from gpu import FIELDS

    payload = json.loads((tmp_path / "gpu.json").read_text())
    assert set(FIELDS) <= set(payload) and payload["dry_run"] is True
    assert "DRY RUN" in (tmp_path / "gpu.md").read_text()
    training = payload["training"]
    for setting in ("tiny-llama/tunerail", "tiny-llama/trainer", "tiny-llama/tunerail-noprefix"):
        assert training[setting]["tokens_per_s"] > 0 and "error" not in training[setting], training[setting]
    assert payload["tunerail_vs_trainer_tokens_per_s"]["tiny-llama"] > 0
    assert payload["shared_prefix_cuda"]["same_loss"] is True and payload["shared_prefix_cuda"]["prefix_tokens"] > 0
    assert payload["generation"]["batch1_tokens_per_s"] > 0 and payload["generation"]["batch32_tokens_per_s"] > 0
    assert payload["attention"]["attn_implementation"] == "sdpa"
    assert "CUDA" in payload["fsdp"]["refused_on_cpu"]


def test_dry_run_never_overwrites_the_gpu_results():
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu.py"), "--dry-run", "--out", str(REPO / "bench" / "results")],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "never writes over bench/results" in proc.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs CUDA")
def test_shared_prefix_on_cuda_matches_the_full_forward(tmp_path):
    import torch

    from test_train_prefix import _batch_and_models, _loss_and_grads

    batch, model, make = _batch_and_models(tmp_path)
    model.cuda()
    batch = {k: v.cuda() for k, v in batch.items()}
    loss_shared, grads_shared = _loss_and_grads(make(model, answer_only_head=True, autocast_bf16=False, shared_prefix=True), model, batch)
    loss_full, grads_full = _loss_and_grads(make(model, answer_only_head=True, autocast_bf16=False, shared_prefix=False), model, batch)
    assert loss_shared == pytest.approx(loss_full, rel=1e-4)
    for name in grads_full:
        torch.testing.assert_close(grads_shared[name], grads_full[name], rtol=1e-3, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs CUDA")
def test_recipe_trains_in_bf16_on_cuda(tmp_path):
    from train_tiny import write_jsonl

    from tunerail.train import train

    train_path = write_jsonl(tmp_path / "train.jsonl", banking_rows(64))
    val_path = write_jsonl(tmp_path / "val.jsonl", banking_rows(16, offset=1000))
    cfg = tiny_config(tmp_path, bf16="auto", learning_rate=1e-3, epochs=2)
    result = train(cfg, train_data=train_path, validation_data=val_path, out_dir=tmp_path / "run")
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]
    assert (result.adapter_dir / "adapter_model.safetensors").exists() and result.stopped_reason in ("completed", "early_stopping")


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs CUDA")
def test_batched_generation_on_cuda_equals_one_row_at_a_time(tmp_path):
    from train_tiny import tiny_model_dir

    from tunerail.eval.generate import generate, load_model
    from tunerail.prompting import pick_template, prompt_for

    lm = load_model(str(tiny_model_dir()))
    assert lm.model.device.type == "cuda"
    template = pick_template(tiny_config(tmp_path))
    prompts = [prompt_for(lm.tokenizer, r["text"], template) for r in banking_rows(12)]
    one = generate(lm, prompts, max_new_tokens=6, batch_size=1)
    many = generate(lm, prompts, max_new_tokens=6, batch_size=12)
    assert many == one
