"""Atomic writes and file hashing: every step writes outputs and hashes inputs the same way.

Lives outside the store so that reports, loaders and steps can write files atomically without
importing the store (one rule in one room).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

SMALL_FILE = 1024 * 1024


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_DEFAULT_MODE = _umask_mode()


def hash_file(path: str | Path) -> str:
    """SHA-256 of a file: small files in one read, large ones with ``hashlib.file_digest``
    (reads into one reusable buffer; the GIL is released while hashing, so threads scale)."""
    with open(path, "rb", buffering=0) as handle:
        if os.fstat(handle.fileno()).st_size <= SMALL_FILE:
            return hashlib.sha256(handle.readall()).hexdigest()
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` via a temp file + fsync + rename: readers see all or nothing."""
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
        os.chmod(tmp, _DEFAULT_MODE)  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
