"""How a text data file is decoded: its byte-order mark, else UTF-8, else a confident guess, never replacement characters."""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from tunerail.errors import DataError, Problem

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_MAGIC = (
    (b"PAR1", "a Parquet file"),
    (b"PK\x03\x04", "a zip archive (or .xlsx workbook)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"SQLite format 3", "an SQLite database"),
    (b"%PDF", "a PDF document"),
)


@dataclass(frozen=True)
class Encoding:
    """How a text file is decoded: the codec name and how it was found (bom, utf-8, detected)."""

    name: str
    how: str

    @property
    def is_plain_utf8(self) -> bool:
        return self.how == "utf-8"

    def describe(self) -> str:
        return {
            "bom": f"{self.name} (byte-order mark)",
            "utf-8": "utf-8",
            "detected": f"{self.name} (detected by charset-normalizer; no byte-order mark)",
        }[self.how]


def detect_encoding(path: str | Path) -> Encoding:
    """The encoding of a text file: its byte-order mark, else valid UTF-8, else charset-normalizer's guess.

    Decoding with ``errors="replace"`` would write U+FFFD into clean files with exit 0, so a
    file that is neither UTF-8 nor confidently another encoding is refused (``DataError``).
    """
    path = Path(path)
    stat = path.stat()
    return _detect_encoding(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _detect_encoding(name: str, size: int, mtime_ns: int) -> Encoding:
    with open(name, "rb") as handle:
        head = handle.read(1 << 16)
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return Encoding(codec, "bom")
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise DataError(
                Problem(
                    f"is a binary file ({what}), not text",
                    file=name,
                    fix="give the file its real extension (.parquet) or export the data as .jsonl/.csv",
                )
            )
    bad_at = _first_invalid_utf8(name)
    if bad_at is None:
        if b"\x00" in head and head.count(b"\x00") * 4 > len(head):
            guess = _charset_guess(head) or ""
            if guess.startswith(("utf_16", "utf_32")):
                return Encoding(codecs.lookup(guess).name, "detected")
            raise DataError(
                Problem("is a binary file (it contains NUL bytes), not text", file=name, fix="export the data as UTF-8 .jsonl/.csv")
            )
        return Encoding("utf-8", "utf-8")
    with open(name, "rb") as handle:
        sample = handle.read(1 << 20)
        if bad_at >= len(sample):  # make sure the sample holds the bytes that are not UTF-8
            handle.seek(max(0, bad_at - (1 << 16)))
            sample += handle.read(1 << 17)
    guessed = _charset_guess(sample)
    if guessed is None:
        kind = "a binary file" if b"\x00" in head else "not text in any encoding tried"
        raise DataError(
            Problem(
                f"is {kind}: byte {bad_at} is not valid UTF-8 and no other encoding fits",
                file=name,
                fix="save the file as UTF-8 (e.g. `iconv -f <encoding> -t utf-8`)",
            )
        )
    codec = codecs.lookup(guessed).name
    try:  # the guess must decode the whole file, or we would still write garbage
        with open(name, encoding=codec, newline="") as handle:
            for _ in iter(lambda: handle.read(1 << 20), ""):
                pass
    except (UnicodeDecodeError, LookupError):
        raise DataError(
            Problem(
                f"is not valid UTF-8 (byte {bad_at}) and does not decode as {codec} either",
                file=name,
                fix="save the file as UTF-8 (e.g. `iconv -f <encoding> -t utf-8`)",
            )
        ) from None
    return Encoding(codec, "detected")


def _first_invalid_utf8(name: str) -> int | None:
    """Byte offset of the first invalid UTF-8 sequence, streaming; None when the file is valid UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(name, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return offset + exc.start
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            return offset + exc.start
    return None


def _charset_guess(sample: bytes) -> str | None:
    from charset_normalizer import from_bytes

    matches = list(from_bytes(sample))
    if not matches:
        return None
    # Short samples tie between single-byte code pages (cp1250, cp1252, cp1257 all decode "café");
    # among the tied best, Western European cp1252 is by far the most common in exported data.
    best = matches[0]
    tied = [m.encoding for m in matches if m.chaos <= best.chaos + 0.01]
    return "cp1252" if "cp1252" in tied else best.encoding


def open_text(path: Path, newline: str) -> Any:
    """Open a text data file in its detected encoding, strictly (no replacement characters)."""
    return open(path, encoding=detect_encoding(path).name, newline=newline)


def decode_error(name: str, line: int, exc: UnicodeDecodeError) -> DataError:
    return DataError(
        Problem(
            f"cannot be decoded as {exc.encoding}: {exc.reason} (near line {line})",
            file=name,
            line=line,
            fix="save the file as UTF-8 (e.g. `iconv -f <encoding> -t utf-8`)",
        )
    )
