"""Reading a run's checkpoint pointer and files: damage is named with the way out, never a traceback.

``latest.json`` is replaced atomically by training, but a copy cut short, a full disk or a hand
edit can still leave it (or ``trainable.safetensors``/``state.pt``) unreadable.
"""

from __future__ import annotations

import json
from pathlib import Path

from tunerail.errors import Problem, TunerailError


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
