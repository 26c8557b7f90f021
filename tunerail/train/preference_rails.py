"""The preference run's rails inside TRL's loop, and what a ``--resume`` takes from its last checkpoint.

TRL's trainers checkpoint through transformers (``checkpoints/checkpoint-N``: adapter, optimizer,
scheduler, RNG, trainer state) and resume from one with ``resume_from_checkpoint``. What they do not
keep is tunerail's: the training clock summed over sessions (the budget caps the whole run, not the
last session) and the history rows of train.json. The rails callback writes them into each
checkpoint as a typed :class:`PreferenceProgress` after transformers has saved it, so a checkpoint
without that file (a kill while saving) is never resumed from. Time a killed session spent past its
last checkpoint is added back from the SFT recipe's :class:`~tunerail.train.budget.RunClock`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tunerail.errors import Problem, TunerailError
from tunerail.io import write_atomic
from tunerail.train.budget import RunClock, over_budget

PROGRESS_FILE = "tunerail_progress.json"
PROGRESS_VERSION = 1


@dataclass
class PreferenceProgress:
    """What a resumed preference run takes from its checkpoint besides transformers' own state."""

    step: int
    sessions: list[float]  # training seconds of each session up to this checkpoint (the last: the session that wrote it)
    history: list[dict[str, Any]] = field(default_factory=list)
    fingerprint: str = ""  # checkpoint.resume_fingerprint of the config that wrote it
    version: int = PROGRESS_VERSION

    @property
    def elapsed(self) -> float:
        return sum(self.sessions)

    @classmethod
    def read(cls, folder: Path) -> PreferenceProgress:
        path = folder / PROGRESS_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{k: data[k] for k in ("step", "sessions", "history", "fingerprint", "version")})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TunerailError(
                Problem(
                    f"the checkpoint's progress file cannot be read ({type(exc).__name__})",
                    file=str(path),
                    fix="delete that checkpoint-* folder to resume from the one before, or start a new --out",
                )
            ) from None


def last_checkpoint(root: Path) -> Path | None:
    """The newest ``checkpoint-N`` folder holding tunerail's progress file (written last, so the save completed)."""
    done = [p for p in root.glob("checkpoint-*") if p.name.split("-")[-1].isdigit() and (p / PROGRESS_FILE).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def resume_progress(root: Path, budget: Any, disabled: Sequence[str]) -> tuple[Path, PreferenceProgress] | None:
    """Where ``--resume`` continues from, with the time a killed session spent past it added back; None: no checkpoint.

    Raises ``TunerailError`` when the budget is already spent: not one more step past the cap.
    """
    folder = last_checkpoint(root)
    if folder is None:
        print(f"--resume: no checkpoint in {root}, starting from scratch", file=sys.stderr)
        return None
    progress = PreferenceProgress.read(folder)
    progress.sessions[-1] += RunClock(root).lost_since(progress.elapsed)  # paid for, though redone
    reason = None if "budget" in disabled else over_budget(budget, progress.elapsed)
    if reason is not None:
        raise TunerailError(
            Problem(
                f"the run has used its budget ({reason}) over {len(progress.sessions)} session(s)",
                file=str(folder),
                field="budget.max_hours",
                fix="raise budget.max_hours (or budget.max_cost) to continue it, or keep the adapter it has",
            )
        )
    print(f"resuming from step {progress.step} ({folder.name})", file=sys.stderr)
    return folder, progress


def rails_callback(
    budget: Any, disabled: Sequence[str], root: Path | None = None, progress: PreferenceProgress | None = None, fingerprint: str = ""
) -> Any:
    """A transformers callback: budget cap over all sessions, non-finite-loss stop, history, progress in each checkpoint.

    ``root``: the checkpoints folder (its RunClock); ``progress``: what a resume continues from.
    """
    from transformers import TrainerCallback

    class Rails(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.history: list[dict[str, Any]] = list(progress.history) if progress else []
            self.before: list[float] = list(progress.sessions) if progress else []  # earlier sessions' seconds
            self.reason: str | None = None
            self.start = time.perf_counter()
            self.fingerprint = fingerprint
            self.clock = RunClock(root) if root is not None else None

        def session(self) -> float:
            return time.perf_counter() - self.start

        def elapsed(self) -> float:
            """Training seconds over every session, time lost to a kill included."""
            return sum(self.before) + self.session()

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
            logs = logs or {}
            self.history.append({"step": state.global_step, **{k: v for k, v in logs.items() if isinstance(v, (int, float))}})
            if "eval_rewards/margins" in logs:
                accuracy = f", accuracy {logs['eval_rewards/accuracies']:.3f}" if "eval_rewards/accuracies" in logs else ""
                print(f"step {state.global_step}: validation reward margin {logs['eval_rewards/margins']:.4f}{accuracy}", file=sys.stderr)
            loss = logs.get("loss")
            if loss is not None and not math.isfinite(loss) and "divergence" not in disabled:
                self.reason, control.should_training_stop = "divergence", True

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.clock is not None:
                self.clock.tick(self.elapsed(), state.global_step)
            if "budget" not in disabled and over_budget(budget, self.elapsed()) is not None:
                # Save here, so a --resume with a larger budget continues from this step, not the last evaluation.
                self.reason, control.should_training_stop, control.should_save = "budget", True, True

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                done = PreferenceProgress(state.global_step, self.before + [self.session()], self.history, self.fingerprint)
                write_atomic(folder / PROGRESS_FILE, json.dumps(asdict(done), default=str))

        def finish(self, step: int) -> dict[str, Any]:
            """``actual`` for train.json: seconds summed over the sessions (each listed), and the clock left for a resume."""
            sessions = self.before + [self.session()]
            if self.clock is not None:
                self.clock.tick(sum(sessions), step, force=True)
            return {"steps": step, "seconds": round(sum(sessions), 2), "sessions": [round(s, 2) for s in sessions]}

    return Rails()
