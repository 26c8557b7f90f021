"""The traffic log: one JSON line per request, appended so that a ``kill -9`` never tears a record.

Why it survives a crash: each record is encoded in full first and handed to the kernel in ONE
``os.write`` on a file opened with ``O_APPEND``; a process killed before the call leaves nothing.
A ``kill -9`` *during* the call can still cut a record of more than a page (Linux stops a write
between pages when a fatal signal is pending; seen in CI with 5 KB records), and so can a full
disk. Such a cut line has no newline: a reader skips it (counted), and a writer that opens a file
ending without a newline first seals it with one, so the next record is never glued onto the cut
one. ``fsync`` after each record (``fsync=True``, the default) also survives a power loss.

Rotation by size, like ``logging.handlers.RotatingFileHandler``: ``traffic.jsonl`` becomes
``traffic.jsonl.1`` (``.1`` -> ``.2`` ...), at most ``backups`` kept. Personal data and secrets
(passwords, keys, tokens) are masked with the one masker (``tunerail.pii.mask``) before the line is
written, and the log is created 0600 (rotation keeps the mode).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from tunerail.pii import mask

MASKED_FIELDS = ("prompt", "output", "messages", "error")


class TrafficLog:
    """Append-only JSONL log with size rotation and PII masking.

    Parameters
    ----------
    path : the live log file (folders are created).
    max_bytes : rotate before a record would take the file beyond this size.
    backups : rotated files kept (0 = truncate on rotation).
    mask_pii : replace e-mails, phones, card numbers, IBANs, IPs, passwords and other secrets by placeholders.
    phone_region : region for national phone numbers (``doctor.phone_region``).
    fsync : flush each record to disk (survives power loss, costs ~1 ms per request).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = 50_000_000,
        backups: int = 5,
        mask_pii: bool = True,
        phone_region: str = "US",
        fsync: bool = True,
    ):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.mask_pii = mask_pii
        self.phone_region = phone_region
        self.fsync = fsync
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = self._open()

    def _open(self) -> int:
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            os.write(fd, b"\n")  # seal a record cut by a crash: it stays one skipped line of its own
        return fd

    def _mask(self, value: Any) -> Any:
        if isinstance(value, str):
            return mask(value, self.phone_region)
        if isinstance(value, list):
            return [self._mask(v) for v in value]
        if isinstance(value, dict):
            return {k: self._mask(v) if k == "content" or isinstance(v, (list, dict)) else v for k, v in value.items()}
        return value

    def encode(self, record: dict[str, Any]) -> bytes:
        """The exact bytes written for ``record``: masked, one line, newline-terminated."""
        if self.mask_pii:
            record = {k: self._mask(v) if k in MASKED_FIELDS else v for k, v in record.items()}
            record["masked"] = True
        return (json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode("utf-8")

    def append(self, record: dict[str, Any]) -> None:
        """Write one record atomically (one ``os.write``), rotating first when the file is full."""
        line = self.encode(record)
        with self._lock:
            if self.max_bytes and os.fstat(self._fd).st_size + len(line) > self.max_bytes and os.fstat(self._fd).st_size:
                self._rotate()
            written = os.write(self._fd, line)
            while written < len(line):  # only on a full disk; the reader drops a line without newline
                written += os.write(self._fd, line[written:])
            if self.fsync:
                os.fsync(self._fd)

    def _rotate(self) -> None:
        os.close(self._fd)
        if self.backups > 0:
            for i in range(self.backups - 1, 0, -1):
                src = self.path.with_name(f"{self.path.name}.{i}")
                if src.exists():
                    os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._fd = self._open()

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


@dataclass
class TrafficRead:
    records: list[dict[str, Any]]
    files: list[Path]
    skipped: int  # torn or unparseable lines


def traffic_files(path: str | Path) -> list[Path]:
    """The live log and its rotations, oldest first. ``path`` may be the file, its folder or a run folder."""
    p = Path(path)
    if p.is_dir():
        p = p / "traffic" / "traffic.jsonl" if (p / "traffic" / "traffic.jsonl").exists() else p / "traffic.jsonl"
    rotated = sorted((q for q in p.parent.glob(p.name + ".*") if q.suffix[1:].isdigit()), key=lambda q: int(q.suffix[1:]), reverse=True)
    return rotated + ([p] if p.exists() else [])


def iter_records(path: Path) -> Iterator[dict[str, Any] | None]:
    """Records of one file; None for a torn or corrupt line (never raises on content)."""
    with open(path, "rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                yield None  # the last write did not finish
                continue
            try:
                value = json.loads(raw)
            except ValueError:
                yield None
                continue
            yield value if isinstance(value, dict) else None


def read_traffic(path: str | Path) -> TrafficRead:
    """Every complete record of the log and its rotations, in write order."""
    from tunerail.errors import Problem, TunerailError

    files = traffic_files(path)
    if not files:
        raise TunerailError(
            Problem("no traffic log found", file=str(path), fix="pass traffic.jsonl written by `tunerail serve` (RUN_DIR/traffic/)")
        )
    records, skipped = [], 0
    for f in files:
        for rec in iter_records(f):
            if rec is None:
                skipped += 1
            else:
                records.append(rec)
    return TrafficRead(records, files, skipped)
