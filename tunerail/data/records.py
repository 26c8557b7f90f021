"""The canonical record: every input format loads into this, with its provenance.

Later steps (doctor, split, train, eval) speak only in records and their ``RowRef``.
"""

from __future__ import annotations

import unicodedata
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal


Format = Literal["chat", "instruction", "prompt_completion", "text_label"]
FORMATS: tuple[str, ...] = ("chat", "instruction", "prompt_completion", "text_label")


@dataclass(frozen=True, order=True, slots=True)
class RowRef:
    """Where a row came from: 0-based record index in its file, 1-based physical line.

    Part of the record model (every record, rejection and raw row carries one); findings,
    reports and splits point at rows through it.
    """

    index: int
    line: int
    file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "line": self.line}
        if self.file is not None:
            out["file"] = self.file
        return out


@dataclass
class RawRow:
    """A row as read from the file, before any interpretation.

    ``data`` is None when the row could not be parsed; ``error`` then says why, ``field`` names
    the field at fault when one is, and ``raw`` keeps the text as read when the reader has it (CSV).
    """

    ref: RowRef
    data: dict[str, Any] | None
    error: str | None = None
    field: str | None = None
    raw: str | None = None


@dataclass
class Rejection:
    """A row that cannot become a record (unparseable, missing or mistyped field)."""

    ref: RowRef
    reason: str
    field: str | None = None
    data: Any = None
    check: str = "format.invalid"
    raw: str | None = None  # the row's text as read, when it did not parse (CSV)


@dataclass(slots=True)
class Record:
    """One training example in canonical form.

    ``messages`` is the chat form every format converts to (system/user/assistant turns);
    ``prompt`` is the text the model sees (all turns before the last assistant turn,
    flattened) and ``completion`` the text it must produce (the last assistant turn, or
    the label). ``fields`` keeps the original columns so checks can look at them.

    Memory: a 1M-row file is held whole by the doctor, so a record has slots and keeps
    ``turns`` only when they are not simply (prompt, completion); ``messages`` derives the
    user/assistant pair otherwise (instruction, prompt-completion and text-label rows), which
    saves ~0.5 KB a row.
    """

    ref: RowRef
    format: Format
    turns: list[dict[str, str]] | None  # chat turns as read; None (or empty): the pair (prompt, completion)
    prompt: str
    completion: str
    label: str | None = None
    group: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def messages(self) -> list[dict[str, str]]:
        """The chat turns: as read for chat rows, else the user prompt and the assistant answer."""
        if self.turns:
            return self.turns
        return [{"role": "user", "content": self.prompt}, {"role": "assistant", "content": self.completion}]

    @property
    def index(self) -> int:
        return self.ref.index

    @property
    def line(self) -> int:
        return self.ref.line

    @property
    def text(self) -> str:
        """Prompt and completion together: what dedup and leakage compare."""
        return f"{self.prompt}\n{self.completion}" if self.completion else self.prompt

    def to_json(self) -> dict[str, Any]:
        """The row as written to clean/quarantine/split files: original columns + provenance."""
        out = dict(self.fields)
        out["_tunerail"] = {"index": self.ref.index, "line": self.ref.line, "file": self.ref.file}
        return out


_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Normalisation used for exact-duplicate and leakage matching: NFKC, casefold, whitespace."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


LONG_TEXT = 1 << 20  # characters: longer texts are normalised piece by piece
_SPLIT = re.compile(r"[ \t\n]")


def text_pieces(text: str, size: int = LONG_TEXT) -> Iterator[str]:
    """``text`` cut just before an ASCII space, tab or newline every ``size`` characters or so.

    A cut before whitespace is safe for the doctor's normalisation: NFKC never composes a
    character with a following space, case folding is per character, and no word (``\\w+``)
    spans whitespace, so pieces can be normalised or tokenised one at a time.
    """
    start = 0
    while len(text) - start > size:
        m = _SPLIT.search(text, start + size)
        if m is None:
            break
        yield text[start : m.start()]
        start = m.start()
    yield text[start:]


def normalized_pieces(text: str, size: int = LONG_TEXT) -> Iterator[str]:
    """Pieces whose concatenation is ``normalize_text(text)``, a megabyte or so at a time.

    For hashing a 50 MB row without three normalised copies of it in memory at once.
    """
    if len(text) <= size:
        yield normalize_text(text)
        return
    emitted = pending = False  # pending: whitespace seen since the last piece emitted
    for piece in text_pieces(text, size):
        folded = unicodedata.normalize("NFKC", piece).casefold()
        core = _WS.sub(" ", folded).strip()
        if core:
            if emitted and (pending or folded[:1].isspace()):
                yield " "
            yield core
            emitted, pending = True, folded[-1:].isspace()
        elif folded:
            pending = True
