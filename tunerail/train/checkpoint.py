"""Resume checkpoints: one typed :class:`TrainState`, written atomically, read back without running code.

A checkpoint is a folder ``checkpoints/state-step-NNNNNN`` holding the trainable weights
(``trainable.safetensors``) and the rest of the state (``trainer_state.pt``, tensors and plain data
only); ``latest.json`` points at the newest. Each folder is built under a temp name and renamed into
place (``io.atomic_folder``) before the pointer moves, so a kill at any moment leaves the previous
checkpoint intact. A copy cut short, a full disk or a hand edit can still damage one: it is named,
with the way out, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tunerail.errors import Problem, TunerailError
from tunerail.findings import Finding, finding_from_dict
from tunerail.io import atomic_folder, write_atomic
from tunerail.prompting import pick_template
from tunerail.train.budget import Estimate

STATE_FILE = "trainer_state.pt"
WEIGHTS_FILE = "trainable.safetensors"
STATE_VERSION = 1  # checkpoints from before the version field load as version 0 (same keys)


@dataclass
class TrainState:
    """Everything a resume restores besides the trainable weights; what crosses the kill -9 boundary.

    ``early``/``divergence`` are the guards' ``state_dict()``s, ``optimizer``/``scheduler`` torch's,
    ``rng`` the torch, Python and numpy generators (:func:`capture_rng`). ``fingerprint`` is
    :func:`resume_fingerprint` of the config that wrote it.
    """

    step: int
    history: list[dict[str, Any]]
    elapsed: float  # training seconds over all sessions, time lost to kills included
    best_dir: str | None
    early: dict[str, Any]
    divergence: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]
    run_id: str | None
    fingerprint: str
    stopped_reason: str = "completed"
    lost_seconds: float = 0.0  # of ``elapsed``: trained after a checkpoint by a session that was killed
    estimate: Estimate | None = None
    estimate_basis: str = "probe"
    probe_seconds: float | None = None
    findings: list[Finding] = field(default_factory=list)
    version: int = STATE_VERSION

    def to_plain(self) -> dict[str, Any]:
        """Tensors and plain data only (``torch.load(weights_only=True)`` reads it back)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}  # not asdict: no deep copy of the optimizer's tensors
        out["estimate"] = self.estimate.to_dict() if self.estimate else None
        out["findings"] = [f.to_dict() for f in self.findings]
        return out

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> TrainState:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("version", 0)
        values["estimate"] = Estimate(**data["estimate"]) if data.get("estimate") else None
        values["findings"] = [finding_from_dict(f) for f in data.get("findings", [])]
        return cls(**values)


def resume_fingerprint(config: Any) -> str:
    """What must not change across a resume (data order and step count depend on it)."""
    keys = {
        "model": config.model.model_dump(mode="json"),
        "train": config.train.model_dump(mode="json"),
        "prompt": pick_template(config).model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()


def capture_rng() -> dict[str, Any]:
    """The torch, Python and numpy generators' states, numpy's as plain values (an ndarray needs weights_only=False)."""
    import numpy as np
    import torch

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    plain_np = [kind, np.asarray(keys).tolist(), int(pos), int(has_gauss), float(gauss)]
    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": plain_np}


def restore_rng(rng: dict[str, Any]) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    kind, keys, pos, has_gauss, gauss = rng["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))


def write_state(root: Path, state: TrainState, weights: dict[str, Any], keep: str | None) -> str:
    """Write ``state-step-NNNNNN`` atomically, point ``latest.json`` at it, delete older states and adapters but ``keep``."""
    import torch
    from safetensors.torch import save_file

    name = f"state-step-{state.step:06d}"
    with atomic_folder(root / name) as tmp:
        save_file({n: t.contiguous() for n, t in weights.items()}, str(tmp / WEIGHTS_FILE))
        torch.save(state.to_plain(), tmp / STATE_FILE)
    write_atomic(root / "latest.json", json.dumps({"dir": name, "step": state.step}))
    for old in root.iterdir():  # keep the latest state and the best adapter only
        if old.name.startswith(("state-step-", "best-step-")) and old.name not in (name, keep):
            shutil.rmtree(old, ignore_errors=True)
    return name


def read_state(root: Path) -> tuple[TrainState, Path]:
    """The newest state under ``root`` and its folder; refuses a pickle that holds code, names a damaged file."""
    import pickle

    import torch

    folder = checkpoint_folder(root / "latest.json")
    try:  # tensors and plain data only: loading a checkpoint must never run code from it
        data = torch.load(folder / STATE_FILE, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise TunerailError(
            Problem(
                f"the checkpoint state holds objects other than tensors and plain data "
                f"({str(exc).splitlines()[0][:200]}); refusing to load it",
                file=str(folder / STATE_FILE),
                fix="start a new --out; only resume from checkpoints tunerail wrote",
            )
        ) from None
    except (OSError, EOFError, RuntimeError) as exc:  # missing, truncated or not a torch file
        raise damaged_checkpoint(folder / STATE_FILE, exc) from None
    try:
        return TrainState.from_plain(data), folder
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a dict, but not one tunerail wrote
        raise damaged_checkpoint(folder / STATE_FILE, exc) from None


def read_weights(folder: Path) -> dict[str, Any]:
    """The trainable weights of a state folder; a truncated file is named with the way out."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(folder / WEIGHTS_FILE))
    except (SafetensorError, OSError) as exc:  # truncated by a full disk or a copy cut short
        raise damaged_checkpoint(folder / WEIGHTS_FILE, exc) from None


def checkpoint_folder(latest: Path) -> Path:
    """The checkpoint folder ``latest.json`` points at; a damaged pointer is named with what to do."""
    try:
        pointer = json.loads(latest.read_text(encoding="utf-8"))
        folder = latest.parent / str(pointer["dir"])
    except (ValueError, KeyError, TypeError) as exc:  # cut short, not JSON, or not {"dir": ..., "step": ...}
        folders = sorted(p.name for p in latest.parent.glob("state-step-*"))
        raise TunerailError(
            Problem(
                f"the checkpoint pointer is damaged ({type(exc).__name__}: {str(exc)[:120]})",
                file=str(latest),
                fix=(f'write {{"dir": "{folders[-1]}"}} into it to resume from the newest state folder, ' if folders else "")
                + "or start a new --out",
            )
        ) from None
    if not folder.is_dir():
        raise TunerailError(Problem(f"points at {pointer['dir']!r}, which does not exist", file=str(latest), fix="start a new --out"))
    return folder


def earlier_run(out_dir: Path) -> TunerailError:
    """An output folder that holds an earlier run, without ``--resume``: refused, never silently mixed or overwritten."""
    return TunerailError(
        Problem("this output folder holds an earlier run", file=str(out_dir), fix="pass --resume to continue it, or choose another --out")
    )


def damaged_checkpoint(path: Path, exc: BaseException) -> TunerailError:
    """A checkpoint file that cannot be read (truncated, missing): named, with the way out."""
    return TunerailError(
        Problem(
            f"the checkpoint file cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else 'empty'})",
            file=str(path),
            fix="the checkpoint is damaged (a kill or a full disk while it was copied?): point latest.json at an "
            "earlier state-step-* folder, or start a new --out",
        )
    )
