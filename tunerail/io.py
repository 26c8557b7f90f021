"""Atomic writes and file hashing: every step writes outputs and hashes inputs the same way.

Lives outside the store so that reports, loaders and steps can write files atomically without
importing the store (one rule in one room).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SMALL_FILE = 1024 * 1024


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_DEFAULT_MODE = _umask_mode()
PRIVATE_MODE = 0o600  # files holding user text (rows, answers, comments, traffic): readable by their owner only


def hash_file(path: str | Path) -> str:
    """SHA-256 of a file: small files in one read, large ones with ``hashlib.file_digest``
    (reads into one reusable buffer; the GIL is released while hashing, so threads scale)."""
    with open(path, "rb", buffering=0) as handle:
        if os.fstat(handle.fileno()).st_size <= SMALL_FILE:
            return hashlib.sha256(handle.readall()).hexdigest()
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_atomic(path: str | Path, data: bytes | str, *, private: bool = False) -> Path:
    """Write ``data`` to ``path`` via a temp file + fsync + rename: readers see all or nothing.

    ``private=True`` creates it 0600 (see ``write_private``); otherwise it gets the umask's mode.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, PRIVATE_MODE if private else _DEFAULT_MODE)  # mkstemp makes 0600; reports are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_private(path: str | Path, data: bytes | str) -> Path:
    """``write_atomic`` for a file that holds user text (clean.jsonl, split files, answers): mode 0600.

    Why: training rows, model answers and review comments may hold personal data; a shared machine's
    other users must not read them through a default 0644.
    """
    return write_atomic(path, data, private=True)


def create_private(path: str | Path) -> Path:
    """Create ``path`` empty with mode 0600 if missing (tighten it if it exists): for files another
    library opens and grows (SQLite databases, append-only logs), which would otherwise get 0644."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_MODE))
    os.chmod(path, PRIVATE_MODE)
    return path


def check_out_dir(out: str | Path, option: str = "--out") -> Path:
    """Refuse an output folder that is an existing file BEFORE any work is done (not after an hour of audit)."""
    from tunerail.errors import Problem, TunerailError

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TunerailError(
            Problem(
                f"{option} is an existing file, not a folder", file=str(out), fix=f"pass a folder for {option} (it is created if missing)"
            )
        )
    return out


@contextmanager
def atomic_folder(final: str | Path) -> Iterator[Path]:
    """Build a folder under a temp sibling name (``.NAME.tmp``), then rename it to ``final``.

    Why: a checkpoint or adapter folder is read back after a kill; it must be the old one or the
    new one, never half written. On an exception ``final`` is untouched and the temp folder removed.
    """
    import shutil

    final = Path(final)
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # left by a killed run
    tmp.mkdir(parents=True)
    try:
        yield tmp
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


INCOMPLETE = ".tunerail-incomplete"


def _replace_entry(src: Path, dst: Path) -> None:
    """``os.replace`` for a file or a folder: an existing folder (an earlier export's ``merged/``) is swapped out, then removed."""
    import shutil

    if dst.is_dir() and not dst.is_symlink():
        old = dst.with_name(f".{dst.name}.{os.getpid()}.replaced")
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


def _remove_entry(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def staged_outputs(out: str | Path, owned: Iterable[str] = ()) -> Iterator[Path]:
    """Write a step's outputs into a temporary sibling folder, then swap them into ``out``.

    Why: an interrupted run must never leave ``out`` mixing new findings with the previous run's
    report. Until the last file is in place ``out`` holds a ``.tunerail-incomplete`` marker (so
    ``out`` is either the old complete set, or visibly incomplete); files named in ``owned`` that this
    run did not write (a ``clean.jsonl`` of an earlier ``--fix`` run) are removed. Two runs into one
    folder are refused by a lock instead of interleaving their files.
    """
    import shutil

    from filelock import FileLock, Timeout

    from tunerail.errors import Problem, TunerailError

    out = check_out_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out.parent / f".{out.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise TunerailError(
            Problem("another tunerail run is writing into this folder", file=str(out), fix="wait for it to finish, or pass another --out")
        ) from None
    try:
        for stale in out.parent.glob(f".{out.name}.*.partial"):  # left by a killed run
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
        try:
            yield tmp
            out.mkdir(parents=True, exist_ok=True)
            write_atomic(out / INCOMPLETE, f"pid {os.getpid()}: outputs being replaced\n")
            written = {p.name for p in tmp.iterdir()}
            for name in sorted(written):
                _replace_entry(tmp / name, out / name)
            for name in set(owned) - written:
                _remove_entry(out / name)
            (out / INCOMPLETE).unlink()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        lock.release()


def read_json(path: str | Path, what: str, fix: str | None = None) -> Any:
    """Parse a JSON file tunerail wrote; a damaged one is a clear error naming the file, never a traceback."""
    from tunerail.errors import Problem, TunerailError

    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TunerailError(Problem(f"{what} not found", file=str(path), fix=fix)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise TunerailError(
            Problem(
                f"{what} is not valid JSON ({exc})",
                file=str(path),
                fix=fix or "restore it from the store (`tunerail verify`) or re-run the step that wrote it",
            )
        ) from None
