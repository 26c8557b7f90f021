"""How several training processes share the work: DDP, FSDP or DeepSpeed, through accelerate's own plugins.

``train.distributed`` picks the strategy; ``accelerate launch`` or ``torchrun`` starts the processes,
as users already do. The recipe asks this module for the ``Accelerator`` arguments, the FSDP wrapping
policy, and for the trainable weights and optimizer state as one whole copy on every rank: under FSDP
each rank holds only a shard, so checkpoints, the weights digest and resume go through these helpers
and rank 0 alone writes.

What each strategy costs (per rank):

- ``ddp`` (default): the whole model, its adapter and the optimizer state on every rank; one
  all-reduce of the trainable gradients per step. Fits whenever one device holds the model.
- ``fsdp``: base weights, adapters and optimizer state sharded over the ranks (FSDP1, accelerate's
  ``FullyShardedDataParallelPlugin``): each transformer layer and each LoRA matrix is its own unit
  (peft's ``fsdp_auto_wrap_policy``), ``use_orig_params=True`` so frozen and trainable weights share
  a layer. One all-gather per layer in forward and backward. accelerate applies FSDP across GPUs
  only (on CPU it would silently run DDP), so it is refused without CUDA.
- ``deepspeed``: ZeRO stage 2 (optimizer state and gradients sharded) through accelerate's
  ``DeepSpeedPlugin``; needs the ``deepspeed`` package.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from tunerail.errors import Problem, TunerailError

STRATEGIES = ("ddp", "fsdp", "deepspeed")
LOSS_PREFIX = "model."  # the recipe's loss wrapper holds the peft model as ``.model``
FSDP_PREFIX = "_fsdp_wrapped_module."  # inserted into parameter names by each FSDP unit


def accelerator_kwargs(strategy: str, *, cuda: bool, batch_size: int = 8, gradient_accumulation: int = 1) -> dict[str, Any]:
    """Keyword arguments for ``accelerate.Accelerator`` that set ``strategy`` up.

    Raises
    ------
    TunerailError
        ``fsdp`` without CUDA, ``deepspeed`` without the package or with gradient accumulation:
        a config error naming ``train.distributed`` and the fix, before any model is loaded.
    """
    if strategy == "ddp":
        return {}
    if strategy == "fsdp":
        if not cuda:
            raise TunerailError(
                Problem(
                    "train.distributed: fsdp needs CUDA GPUs: accelerate shards with FSDP across GPUs only "
                    "(on CPU processes it would silently fall back to DDP)",
                    field="train.distributed",
                    fix="use train.distributed: ddp on CPU, or run on GPUs under `accelerate launch` / `torchrun`",
                )
            )
        from accelerate import FullyShardedDataParallelPlugin

        # The wrapping policy needs the model; the recipe sets it with ``set_wrap_policy`` before prepare().
        plugin = FullyShardedDataParallelPlugin(fsdp_version=1, use_orig_params=True, state_dict_type="FULL_STATE_DICT")
        return {"fsdp_plugin": plugin}
    if strategy == "deepspeed":
        if importlib.util.find_spec("deepspeed") is None:
            raise TunerailError(
                Problem(
                    "train.distributed: deepspeed needs the deepspeed package, which is not installed",
                    field="train.distributed",
                    fix="pip install deepspeed (on a CUDA machine), or use train.distributed: fsdp / ddp",
                )
            )
        if gradient_accumulation > 1:
            # The engine would scale each micro-batch loss by 1/steps a second time and step on its own count.
            raise TunerailError(
                Problem(
                    "train.distributed: deepspeed runs with train.gradient_accumulation 1 only",
                    field="train.gradient_accumulation",
                    fix="raise train.batch_size or the number of processes instead, or use train.distributed: fsdp / ddp",
                )
            )
        from accelerate import DeepSpeedPlugin

        # ZeRO-2: optimizer state and gradients sharded, weights whole on every rank (so checkpoints read them as DDP does).
        ds_config = {
            "train_micro_batch_size_per_gpu": batch_size,
            "gradient_accumulation_steps": 1,
            "zero_optimization": {"stage": 2},
            "gradient_clipping": "auto",
        }
        return {"deepspeed_plugin": DeepSpeedPlugin(hf_ds_config=ds_config)}
    raise TunerailError(
        Problem(f"unknown train.distributed {strategy!r}", field="train.distributed", fix=f"one of {', '.join(STRATEGIES)}")
    )


def set_wrap_policy(accelerator: Any, peft_model: Any) -> None:
    """FSDP only: wrap each transformer layer and each trainable LoRA matrix as its own unit (peft's policy).

    A unit's flat parameter must hold one dtype and, without ``use_orig_params``, one
    ``requires_grad``; putting the fp32 LoRA matrices in their own units satisfies both.
    """
    plugin = getattr(accelerator.state, "fsdp_plugin", None)
    if plugin is None or not is_sharded_run(accelerator):
        return
    from peft.utils.other import fsdp_auto_wrap_policy

    plugin.auto_wrap_policy = fsdp_auto_wrap_policy(peft_model)


def is_sharded_run(accelerator: Any) -> bool:
    """True when the model is sharded over ranks (FSDP): weights must be gathered before reading them."""
    return str(getattr(accelerator, "distributed_type", "")).endswith("FSDP")


def is_deepspeed_run(accelerator: Any) -> bool:
    """True under DeepSpeed: the engine wraps model and optimizer together and owns the optimizer step."""
    return str(getattr(accelerator, "distributed_type", "")).endswith("DEEPSPEED")


def _fsdp_root(loss_model: Any) -> Any:
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    return loss_model if isinstance(loss_model, FSDP) else None


def _peft_name(name: str) -> str:
    """``_fsdp_wrapped_module.model.base_model...`` (FSDP's view of the loss wrapper) -> peft's ``base_model...``."""
    name = name.replace(FSDP_PREFIX, "")
    return name[len(LOSS_PREFIX) :] if name.startswith(LOSS_PREFIX) else name


def trainable_weights(accelerator: Any, loss_model: Any) -> dict[str, Any]:
    """Every trainable tensor, whole, on CPU, by its peft name; under FSDP a collective (call on every rank).

    Only the units whose parameters are all trainable (the LoRA matrices) are gathered one at a
    time, so the base model is never unsharded at once; other trainable weights (``method: full``)
    are gathered with the whole model.
    """
    root = _fsdp_root(loss_model)
    if root is None:
        model = accelerator.unwrap_model(loss_model).model
        return {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}  # on CPU: the live tensors, no copy
    return _fsdp_apply(root, lambda name, param: param.detach().cpu().clone(), writeback=False)


def load_trainable_weights(accelerator: Any, loss_model: Any, weights: dict[str, Any]) -> list[str]:
    """Copy ``weights`` (peft names) into the model in place; returns the names the model lacks."""
    import torch

    root = _fsdp_root(loss_model)
    if root is None:
        params = dict(accelerator.unwrap_model(loss_model).model.named_parameters())
        missing = sorted(set(weights) - set(params))
        if not missing:
            with torch.no_grad():
                for n, t in weights.items():
                    params[n].copy_(t)
        return missing
    names = {_peft_name(n) for n, p in root.named_parameters() if p.requires_grad}
    missing = sorted(set(weights) - names)
    if not missing:
        with torch.no_grad():
            _fsdp_apply(root, lambda name, param: param.copy_(weights[name]), writeback=True)
    return missing


def _fsdp_apply(root: Any, fn: Any, *, writeback: bool) -> dict[str, Any]:
    """``fn(peft_name, whole_param)`` for each trainable parameter, unsharding one FSDP unit at a time."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    name_of = {id(p): _peft_name(n) for n, p in root.named_parameters() if p.requires_grad}
    out: dict[str, Any] = {}
    with FSDP.summon_full_params(root, recurse=False, writeback=False):
        pass  # initialises the root first (a resume loads before any forward): inner units must not become roots
    for unit in FSDP.fsdp_modules(root):
        inner = list(unit.module.parameters())
        leaf = not any(isinstance(m, FSDP) for m in unit.module.modules() if m is not unit.module)
        if unit is root or not leaf or not inner or not all(p.requires_grad for p in inner):
            continue
        with FSDP.summon_full_params(unit, recurse=False, writeback=writeback):
            for p in inner:
                out[name_of[id(p)]] = fn(name_of[id(p)], p)
    rest = [i for i, name in name_of.items() if name not in out]
    if rest:
        with FSDP.summon_full_params(root, writeback=writeback):
            for n, p in root.named_parameters():
                if p.requires_grad and _peft_name(n) not in out:
                    out[_peft_name(n)] = fn(_peft_name(n), p)
    return out


def optimizer_state(loss_model: Any, optimizer: Any) -> dict[str, Any]:
    """The optimizer's state as one whole copy (FSDP: gathered by parameter name; a collective).

    Under FSDP this goes through ``torch.distributed.checkpoint.state_dict``: FSDP1's own
    ``optim_state_dict`` returned ``exp_avg`` values that were not the optimizer's (torch 2.13, CPU/gloo).
    """
    root = _fsdp_root(loss_model)
    if root is None:
        if type(optimizer).__name__ == "AcceleratedOptimizer" and "DeepSpeed" in type(optimizer.optimizer).__name__:
            return {}  # ZeRO keeps a partition per rank; resume refuses it (load_optimizer_state)
        return optimizer.state_dict()  # type: ignore[no-any-return]
    if not optimizer.state:  # before step 1: the gather would initialise the state by a zero-gradient step
        return optimizer.state_dict()  # type: ignore[no-any-return]
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(root, optimizer, options=StateDictOptions(full_state_dict=True))  # type: ignore[no-any-return]


def load_optimizer_state(loss_model: Any, optimizer: Any, state: dict[str, Any]) -> None:
    """Load what :func:`optimizer_state` returned (FSDP: every rank reads the whole copy and keeps its shard)."""
    if not state:
        raise TunerailError(
            Problem(
                "this checkpoint was written under train.distributed: deepspeed, whose ZeRO optimizer state tunerail does not gather",
                field="train.distributed",
                fix="start a new --out (the best adapter of this run is kept), or train with ddp / fsdp to resume",
            )
        )
    root = _fsdp_root(loss_model)
    if root is None or not state.get("state"):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(root, optimizer, state, options=StateDictOptions(full_state_dict=True))


def clip_grad_norm(loss_model: Any, parameters: list[Any], max_norm: float) -> Any:
    """Clip by the global gradient norm: FSDP's own method under FSDP (each rank holds a shard of each gradient)."""
    import torch

    root = _fsdp_root(loss_model)
    if root is not None:
        return root.clip_grad_norm_(max_norm)
    return torch.nn.utils.clip_grad_norm_(parameters, max_norm)


def save_gathered(model: Any, weights: dict[str, Any], folder: Any) -> None:
    """Write a checkpoint from gathered weights (rank 0, FSDP): a peft adapter folder, or the full model.

    peft's ``save_pretrained`` picks the adapter's keys by walking the model's module names, which
    FSDP changed (``_fsdp_wrapped_module``); the file is written here with peft's key format
    (adapter name dropped: ``...q_proj.lora_A.weight``) and peft's own ``adapter_config.json``.
    """
    from pathlib import Path

    from safetensors.torch import save_file

    folder = Path(folder)
    if not hasattr(model, "peft_config"):
        model.save_pretrained(folder, safe_serialization=True, state_dict=weights)
        return
    adapter = model.active_adapter
    tensors = {k.replace(f".{adapter}.", "."): v.contiguous() for k, v in weights.items() if f".{adapter}." in k}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    model.peft_config[adapter].save_pretrained(str(folder))
