"""CSV/TSV rows with provenance, and what an unterminated quote did to them.

A quote opened and never closed makes the csv module read every following line into one field
until the next quote character: the rows in between vanish into one long cell (six rows, in the
case that prompted this). The reader here runs in strict mode, so such a record is a parse error;
the line that opened the quote is rejected with its raw text, the lines it swallowed are named
and read again as rows of their own.
"""

from __future__ import annotations

import csv
import sys
from collections import deque
from collections.abc import Iterator
from typing import IO

from tunerail.data.records import RawRow, RowRef


class _Lines:
    """The file's physical lines as the csv reader pulls them, kept per record, with push-back."""

    def __init__(self, handle: IO[str]):
        self.handle = handle
        self.pending: deque[tuple[int, str]] = deque()
        self.taken: list[tuple[int, str]] = []  # (line number, text) of the record being read
        self.number = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.pending:
            number, text = self.pending.popleft()
        else:
            text = next(self.handle)
            self.number += 1
            number = self.number
        self.taken.append((number, text))
        return text

    def start_record(self) -> None:
        self.taken = []

    def push_back(self, lines: list[tuple[int, str]]) -> None:
        self.pending.extendleft(reversed(lines))


def iter_csv_rows(handle: IO[str], name: str, delimiter: str) -> Iterator[RawRow]:
    """Rows of an open CSV/TSV file; a malformed record yields a row error carrying its raw text."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    lines = _Lines(handle)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        header = [h.strip().lstrip("\ufeff") for h in next(reader)]
    except StopIteration:
        return
    except csv.Error:
        header = next(csv.reader([lines.taken[0][1]], delimiter=delimiter))  # a broken header: take its first line as is
        lines.push_back(lines.taken[1:])
    index = 0
    while True:
        lines.start_record()
        try:
            cells: list[str] | None = next(reader)
            error = None
        except StopIteration:
            return
        except csv.Error as exc:
            cells, error = None, str(exc)
        taken = lines.taken
        if not taken:
            return
        if error is not None and len(taken) == 1:  # a stray quote inside one line: read it leniently, as before
            cells = next(csv.reader([taken[0][1]], delimiter=delimiter), [])
        ref = RowRef(index=index, line=taken[0][0], file=name)
        if cells is not None and (not cells or all(not c.strip() for c in cells)):
            continue  # blank lines are not records
        index += 1
        if cells is not None and len(cells) == len(header):
            yield RawRow(ref, dict(zip(header, cells)))
            continue
        if len(taken) > 1 and (error is not None or _looks_swallowed(taken, delimiter, len(header))):
            yield RawRow(ref, None, _swallowed_message(taken, error), raw=taken[0][1].rstrip("\r\n"))
            lines.push_back(taken[1:])  # read the swallowed lines again, as rows of their own
            continue
        raw = "".join(text for _, text in taken).rstrip("\r\n")
        if cells is None:
            yield RawRow(ref, None, f"invalid CSV: {error}", raw=raw)
        else:
            yield RawRow(ref, None, f"expected {len(header)} columns ({', '.join(header)}), found {len(cells)}", raw=raw)


def _looks_swallowed(taken: list[tuple[int, str]], delimiter: str, width: int) -> bool:
    """A multi-line record with the wrong cell count whose inner lines each read as a full row."""
    inner = [text for _, text in taken[1:]]
    return all(len(next(csv.reader([t], delimiter=delimiter), [])) == width for t in inner if t.strip())


def _swallowed_message(taken: list[tuple[int, str]], error: str | None) -> str:
    first, last = taken[0][0], taken[-1][0]
    why = f" ({error})" if error else ""
    return (
        f"invalid CSV: the quote opened on line {first} is not closed where the field ends{why}; "
        f"lines {first + 1}-{last} were read into it, so they are read again as rows of their own"
    )
