"""Is this the test set and are these the criteria that were frozen at split time?

The store decides: ``split.json`` only points at the split's record in the store
(:func:`tunerail.split.frozen.stored_split`), and the test file's SHA-256 must equal the hash
that record holds, else evaluation is refused (exit 2): a test set edited after training makes
every number in the report meaningless. A split.json that disagrees with the record (loosened
criteria with a recomputed hash, rewritten test hashes) is refused the same way. The criteria
hash is compared with the record's; a mismatch does not stop the evaluation but marks the
verdict "criteria changed after the test set was frozen" (EVL010).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunerail.io import hash_file
from tunerail.split.frozen import stored_split, verify_frozen_split
from tunerail.store import Store


def check_frozen(
    test_path: str | Path | None, split_json: str | Path | None, criteria_hash: str, store: Store | None = None
) -> dict[str, Any]:
    """Return ``{"criteria_state": frozen|edited|unverified, "test_hash": ..., "recorded_test_hash": ...}``.

    Parameters
    ----------
    test_path : the test file (None: records passed in memory, nothing to check).
    split_json : the split manifest; default: the ``split.json`` beside ``test_path`` when there is
        one, so a plain ``eval --test split/test.jsonl`` is checked without being asked.
    store : the store to look the split up in first (default: the root split.json names).

    Raises
    ------
    GuardrailError
        The test file differs from the stored split, or split.json names no stored split or
        disagrees with it (:func:`tunerail.split.frozen.verify_frozen_split`).
    """
    state: dict[str, Any] = {"criteria_state": "unverified", "test_hash": None, "recorded_test_hash": None, "test_state": "unverified"}
    test_file = Path(test_path) if test_path is not None and Path(test_path).is_file() else None
    if split_json is None and test_file is not None and (test_file.parent / "split.json").is_file():
        split_json = test_file.parent / "split.json"
    if split_json is None:
        if test_file is not None:
            state["test_hash"] = hash_file(test_file)
        return state
    _, artifact, found = stored_split(split_json, store)
    state.update(split_json=str(split_json), split_id=artifact.id, store=str(found.root))
    if test_file is not None:  # verify_frozen_split hashes the file once and returns the (matching) hash
        state["test_hash"] = state["recorded_test_hash"] = verify_frozen_split(test_file, Path(split_json), store)
        state["test_state"] = "frozen"
    frozen_criteria = artifact.meta.get("criteria_hash")  # the store's record, never split.json's copy
    if isinstance(frozen_criteria, str):
        state["criteria_state"] = "frozen" if frozen_criteria == criteria_hash else "edited"
        state["recorded_criteria_hash"] = frozen_criteria
    return state
