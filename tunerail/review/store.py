"""The review session on disk: items, who reviews what with which side as A, and every vote.

One SQLite file in the run folder (``review/review.sqlite``), WAL mode, one short transaction per
vote: a vote is on disk before the next page renders, a server restart loses nothing, and two
annotators voting at once only wait on each other for the few milliseconds of a commit.

Blinding lives here: the ``assignments`` table maps an annotator's queue position to an opaque unit
id and to which system is shown as A. Pages, URLs and form fields carry only positions, opaque ids
and "A"/"B"; the system names are joined back in only when a vote is stored and in the results.

Notes
-----
Assignment (``assign``) is a pure function: seeded, an ``overlap`` share of units to two
annotators (for agreement), the rest one each (for coverage), and per annotator as many units with
the first system as A as with the second (+/- 1), in a seeded shuffled order.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from tunerail.errors import Problem, TunerailError
from tunerail.io import create_private
from tunerail.pii import mask

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS units (unit TEXT PRIMARY KEY, item INTEGER NOT NULL, pair INTEGER NOT NULL,
                                  first TEXT NOT NULL, second TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS annotators (name TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE,
                                       csrf TEXT NOT NULL, admin INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS assignments (annotator TEXT NOT NULL, position INTEGER NOT NULL, unit TEXT NOT NULL,
                                        a_is TEXT NOT NULL, PRIMARY KEY (annotator, position),
                                        UNIQUE (annotator, unit));
CREATE TABLE IF NOT EXISTS votes (annotator TEXT NOT NULL, unit TEXT NOT NULL, preference TEXT,
                                  rubric TEXT NOT NULL, comment TEXT NOT NULL, skip_reason TEXT,
                                  cast_at REAL NOT NULL, PRIMARY KEY (annotator, unit));
"""


@dataclass(frozen=True)
class Unit:
    """One thing to judge: an item (test row) and a pair of systems; ``unit`` is an opaque id."""

    unit: str
    item: int
    pair: int
    first: str
    second: str


def parse_pairs(text: str | None) -> list[tuple[str, str]]:
    """``"base:tuned,base_few_shot:tuned"`` -> [("base", "tuned"), ...] (default base:tuned)."""
    pairs = []
    for part in (text or "base:tuned").split(","):
        names = [p.strip() for p in part.split(":")]
        if len(names) != 2 or not all(names) or names[0] == names[1]:
            raise TunerailError(
                Problem(f"bad pair {part!r}", field="--pairs", fix="write pairs as first:second, e.g. base:tuned (comma-separated)")
            )
        pairs.append((names[0], names[1]))
    return pairs


def make_units(items: Sequence[dict[str, Any]], pairs: Sequence[tuple[str, str]], seed: int) -> list[Unit]:
    """Every (item, pair) whose two outputs exist; ids are seeded random hex (no index, no name)."""
    rng = random.Random(f"units-{seed}")
    units = []
    for i, item in enumerate(items):
        for p, (first, second) in enumerate(pairs):
            if first in item["outputs"] and second in item["outputs"]:
                units.append(Unit(f"{rng.getrandbits(64):016x}", i, p, first, second))
    return units


def assign(units: Sequence[str], annotators: Sequence[str], overlap: float, seed: int) -> dict[str, list[tuple[str, bool]]]:
    """annotator -> [(unit, first_is_a)], seeded; ``overlap`` share of units to two annotators.

    Overlap units rotate over annotator pairs so every pair shares some; the rest go to one
    annotator each, least-loaded first. Per annotator, the A side is balanced exactly (+/- 1).
    With one annotator every unit goes to them and no agreement can be measured (reported).
    """
    rng = random.Random(f"assign-{seed}")
    order = list(units)
    rng.shuffle(order)
    names = list(annotators)
    queues: dict[str, list[str]] = {a: [] for a in names}
    n_overlap = round(overlap * len(order)) if len(names) >= 2 else 0
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    for k, unit in enumerate(order[:n_overlap]):
        a, b = pairs[k % len(pairs)]
        queues[a].append(unit)
        queues[b].append(unit)
    for unit in order[n_overlap:]:
        least = min(names, key=lambda a: (len(queues[a]), names.index(a)))
        queues[least].append(unit)
    out: dict[str, list[tuple[str, bool]]] = {}
    for a in names:
        own = random.Random(f"order-{seed}-{a}")
        queue = list(queues[a])
        own.shuffle(queue)
        sides = [i % 2 == 0 for i in range(len(queue))]
        own.shuffle(sides)
        out[a] = list(zip(queue, sides))
    return out


def hash_token(token: str) -> str:
    """Only a hash of each link token is stored: a copied database does not hand out links."""
    return hashlib.sha256(token.encode()).hexdigest()


class ReviewStore:
    """The SQLite file of one review session; every method opens a short-lived connection."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=FULL")  # a vote acknowledged is a vote on disk
            conn.row_factory = sqlite3.Row
            yield conn
        finally:
            conn.close()

    # --- setup -----------------------------------------------------------------------------

    def exists(self) -> bool:
        if not self.path.exists():
            return False
        with self.connect() as c:
            return c.execute("SELECT name FROM sqlite_master WHERE name='meta'").fetchone() is not None

    def create(
        self,
        *,
        material_hash: str,
        units: Sequence[Unit],
        annotators: Sequence[str],
        overlap: float,
        seed: int,
        pairs: Sequence[tuple[str, str]],
    ) -> dict[str, str]:
        """Create the session; returns name -> link token (admin under ``"@admin"``), shown once."""
        create_private(self.path)  # votes and comments are user text; SQLite's -wal/-shm files copy this mode
        plan = assign([u.unit for u in units], annotators, overlap, seed)
        tokens = {name: secrets.token_urlsafe(24) for name in [*annotators, "@admin"]}
        with self.connect() as c:
            c.execute("PRAGMA journal_mode=WAL")  # persistent in the file: readers never block the writer
            c.executescript(SCHEMA)
            c.execute("BEGIN IMMEDIATE")
            meta = {
                "material_hash": material_hash,
                "annotators": json.dumps(list(annotators)),
                "overlap": str(overlap),
                "seed": str(seed),
                "pairs": json.dumps([list(p) for p in pairs]),
                "created": str(time.time()),
            }
            c.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            c.executemany("INSERT INTO units VALUES (?, ?, ?, ?, ?)", [(u.unit, u.item, u.pair, u.first, u.second) for u in units])
            c.executemany(
                "INSERT INTO annotators VALUES (?, ?, ?, ?)",
                [(n, hash_token(t), secrets.token_urlsafe(24), int(n == "@admin")) for n, t in tokens.items()],
            )
            first_of = {u.unit: (u.first, u.second) for u in units}
            c.executemany(
                "INSERT INTO assignments VALUES (?, ?, ?, ?)",
                [
                    (a, pos, unit, first_of[unit][0] if first_a else first_of[unit][1])
                    for a, queue in plan.items()
                    for pos, (unit, first_a) in enumerate(queue)
                ],
            )
            c.execute("COMMIT")
        return tokens

    def meta(self) -> dict[str, Any]:
        with self.connect() as c:
            rows = dict(c.execute("SELECT key, value FROM meta").fetchall())
        return {
            "material_hash": rows["material_hash"],
            "annotators": json.loads(rows["annotators"]),
            "overlap": float(rows["overlap"]),
            "seed": int(rows["seed"]),
            "pairs": [tuple(p) for p in json.loads(rows["pairs"])],
        }

    def new_tokens(self) -> dict[str, str]:
        """Fresh link tokens for every annotator (old links stop working); votes are kept."""
        with self.connect() as c:
            names = [r["name"] for r in c.execute("SELECT name FROM annotators")]
            tokens = {n: secrets.token_urlsafe(24) for n in names}
            c.execute("BEGIN IMMEDIATE")
            c.executemany("UPDATE annotators SET token_hash = ? WHERE name = ?", [(hash_token(t), n) for n, t in tokens.items()])
            c.execute("COMMIT")
        return tokens

    # --- per request -----------------------------------------------------------------------

    def annotator_for(self, token: str | None) -> sqlite3.Row | None:
        if not token:
            return None
        with self.connect() as c:
            return c.execute("SELECT * FROM annotators WHERE token_hash = ?", (hash_token(token),)).fetchone()

    def queue_length(self, annotator: str) -> int:
        with self.connect() as c:
            return c.execute("SELECT COUNT(*) FROM assignments WHERE annotator = ?", (annotator,)).fetchone()[0]

    def assignment(self, annotator: str, position: int) -> sqlite3.Row | None:
        """The unit at ``position`` with its item, systems, A side and this annotator's vote (if any)."""
        with self.connect() as c:
            return c.execute(
                "SELECT s.position, s.unit, s.a_is, u.item, u.first, u.second, v.preference, v.rubric, v.comment, "
                "v.skip_reason, v.cast_at FROM assignments s JOIN units u ON u.unit = s.unit "
                "LEFT JOIN votes v ON v.unit = s.unit AND v.annotator = s.annotator "
                "WHERE s.annotator = ? AND s.position = ?",
                (annotator, position),
            ).fetchone()

    def progress(self, annotator: str) -> tuple[int, int, int | None]:
        """(done, total, first position not yet done — None when all are done): resume point."""
        with self.connect() as c:
            rows = c.execute(
                "SELECT s.position, v.cast_at FROM assignments s LEFT JOIN votes v ON v.unit = s.unit "
                "AND v.annotator = s.annotator WHERE s.annotator = ? ORDER BY s.position",
                (annotator,),
            ).fetchall()
        done = sum(r["cast_at"] is not None for r in rows)
        nxt = next((r["position"] for r in rows if r["cast_at"] is None), None)
        return done, len(rows), nxt

    def cast(
        self, annotator: str, unit: str, *, preference: str | None, rubric: dict[str, dict[str, int]], comment: str, skip_reason: str | None
    ) -> None:
        """Store (or replace) one vote in its own committed transaction.

        ``preference`` is a system name or ``"tie"`` (None when skipped); ``rubric`` maps question ->
        system name -> score. The A/B side was translated by the caller. The comment and skip reason
        are stored masked (``tunerail.pii.mask``): annotators paste e-mails, keys and passwords too.
        """
        comment = mask(comment)
        skip_reason = mask(skip_reason) if skip_reason else skip_reason
        with self.connect() as c:
            c.execute("BEGIN IMMEDIATE")
            c.execute(
                "INSERT OR REPLACE INTO votes VALUES (?, ?, ?, ?, ?, ?, ?)",
                (annotator, unit, preference, json.dumps(rubric, sort_keys=True), comment, skip_reason, time.time()),
            )
            c.execute("COMMIT")

    def votes(self) -> list[dict[str, Any]]:
        """Every vote joined with its unit (item, systems), annotators' order."""
        with self.connect() as c:
            rows = c.execute(
                "SELECT v.annotator, v.unit, v.preference, v.rubric, v.comment, v.skip_reason, v.cast_at, "
                "u.item, u.pair, u.first, u.second FROM votes v JOIN units u ON u.unit = v.unit "
                "ORDER BY v.cast_at"
            ).fetchall()
        return [{**dict(r), "rubric": json.loads(r["rubric"])} for r in rows]

    def assignments(self) -> list[dict[str, Any]]:
        with self.connect() as c:
            return [
                dict(r)
                for r in c.execute(
                    "SELECT s.annotator, s.position, s.unit, s.a_is, u.first, u.second FROM assignments s JOIN units u ON u.unit = s.unit"
                )
            ]
