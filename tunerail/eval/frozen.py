"""Is this the test set and are these the criteria that were frozen at split time?

The test file's SHA-256 must equal the hash split.json recorded
for the test split, else evaluation is refused (exit 2): a test set edited after training
makes every number in the report meaningless. The criteria hash is compared too; a mismatch
does not stop the evaluation but marks the verdict "criteria changed after the test set was frozen".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunerail.errors import GuardrailError, Problem
from tunerail.io import hash_file


def check_frozen(test_path: str | Path | None, split_json: str | Path | None, criteria_hash: str) -> dict[str, Any]:
    """Return ``{"criteria_state": frozen|edited|unverified, "test_hash": ..., "recorded_test_hash": ...}``.

    The test-file check is :func:`tunerail.split.verify_frozen_split` (one implementation for every
    step); it raises ``GuardrailError`` when the file's hash differs from the recorded one.
    """
    from tunerail.split.frozen import verify_frozen_split

    state: dict[str, Any] = {"criteria_state": "unverified", "test_hash": None, "recorded_test_hash": None, "test_state": "unverified"}
    test_file = Path(test_path) if test_path is not None and Path(test_path).is_file() else None
    if split_json is None:
        if test_file is not None:
            state["test_hash"] = hash_file(test_file)
        return state
    path = Path(split_json)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GuardrailError(
            Problem("split manifest not found", file=str(path), fix="pass the split.json written by `tunerail split`")
        ) from None
    except ValueError as exc:
        raise GuardrailError(
            Problem(
                f"split manifest is not valid JSON ({exc})", file=str(path), fix="restore split.json from the store (`tunerail verify`)"
            )
        ) from None
    if test_file is not None:  # verify_frozen_split hashes the file once and returns the (matching) hash
        state["test_hash"] = state["recorded_test_hash"] = verify_frozen_split(test_file, manifest)
        state["test_state"] = "frozen"
    frozen_criteria = manifest.get("criteria_hash")
    if isinstance(frozen_criteria, str):
        state["criteria_state"] = "frozen" if frozen_criteria == criteria_hash else "edited"
        state["recorded_criteria_hash"] = frozen_criteria
    return state
