"""The frozen test set: every step that reads ``test.jsonl`` calls :func:`verify_frozen_split` first.

A test set edited after results were seen (a relabelled row, a dropped "bad" example) makes every
later score incomparable and usually optimistic. The split records the file's SHA-256 in
``split.json`` and in the store; a changed file is refused, not silently re-hashed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tunerail.errors import GuardrailError, Problem, TunerailError
from tunerail.io import hash_file, read_json
from tunerail.store import Store

_SHA = re.compile(r"^[0-9a-f]{64}$")


def _expected(test: Path, reference: Any) -> tuple[str, str]:
    """(expected sha256, where it came from)."""
    if isinstance(reference, str) and _SHA.match(reference):
        return reference, "the given hash"
    if isinstance(reference, Store):
        manifest = read_json(test.parent / "split.json", "split manifest") if (test.parent / "split.json").exists() else {}
        split_id = manifest.get("store", {}).get("split_id")
        if split_id:
            artifact = reference.get(split_id)
        else:  # no split.json: the newest stored split that froze a file of this name
            candidates = [a for a in reference.list("split") if test.name in a.files]
            if not candidates:
                raise TunerailError(
                    Problem(
                        "no stored split records this test file", file=str(test), fix="run `tunerail split` to create and freeze the split"
                    )
                )
            artifact = candidates[-1]
        if test.name not in artifact.files:
            raise TunerailError(Problem(f"split {artifact.short_id} has no file {test.name!r}", file=str(test)))
        return artifact.files[test.name]["sha256"], f"store {reference.root}, split {artifact.short_id}"
    if isinstance(reference, dict):
        manifest, source = reference, "split manifest"
    else:
        path = Path(reference) if reference is not None else test.parent / "split.json"
        if not path.exists():
            raise TunerailError(
                Problem(
                    "split.json not found: cannot check that the test set is unchanged",
                    file=str(path),
                    fix="pass the split.json written by `tunerail split`",
                )
            )
        manifest, source = read_json(path, "split manifest"), str(path)
    frozen = manifest.get("frozen") or {}
    sha = frozen.get("sha256") or manifest.get("hashes", {}).get(test.name)
    if not sha:
        raise TunerailError(
            Problem(
                "the split manifest records no frozen test hash", file=source, fix="re-run `tunerail split` to write a complete split.json"
            )
        )
    return sha, source


def verify_frozen_split(path_or_dir: str | Path, split_json_or_store: str | Path | dict | Store | None = None) -> str:
    """Check that the test file is byte-identical to the one the split froze; return its SHA-256.

    Parameters
    ----------
    path_or_dir : ``test.jsonl`` or the split folder containing it.
    split_json_or_store : ``split.json`` path or its parsed dict (default: the one beside the file),
        a :class:`~tunerail.store.Store` (trusted copy of the hash), or the expected hex digest.

    Raises
    ------
    GuardrailError
        The file changed since the split: names both hashes and how to get the frozen file back.
    """
    test = Path(path_or_dir)
    if test.is_dir():
        test = test / "test.jsonl"
    if not test.exists():
        raise TunerailError(Problem("frozen test file not found", file=str(test), fix="point to the folder written by `tunerail split`"))
    expected, source = _expected(test, split_json_or_store)
    actual = hash_file(test)
    if actual != expected:
        raise GuardrailError(
            Problem(
                f"the frozen test set changed after the split: SHA-256 {actual[:12]} != {expected[:12]} recorded in {source}",
                file=str(test),
                fix="restore the original file (Store.export(<split id>, DIR) gives it back); if the change is "
                "intended, re-run `tunerail split`: scores from before are then no longer comparable",
            )
        )
    return actual


def split_problems(folder: str | Path) -> list[Problem]:
    """Every split file of ``folder`` that is missing or differs from the hash in its split.json."""
    folder = Path(folder)
    manifest = read_json(folder / "split.json", "split manifest")
    problems: list[Problem] = []
    for name, sha in sorted(manifest.get("hashes", {}).items()):
        path = folder / name
        if not path.exists():
            problems.append(Problem(f"missing split file {name!r}", file=str(path), fix="re-run `tunerail split`"))
        elif hash_file(path) != sha:
            frozen = name == manifest.get("frozen", {}).get("file")
            problems.append(
                Problem(
                    f"{'the FROZEN test set' if frozen else name} changed after the split (SHA-256 differs from split.json)",
                    file=str(path),
                    fix="restore the original file (Store.export(<split id>, DIR)) or re-run `tunerail split`",
                )
            )
    return problems
