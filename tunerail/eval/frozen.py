"""Is this the test set and are these the criteria that were frozen at split time?

Minimal local check against ``split.json`` until ``tunerail.split.verify_frozen_split`` is
merged (the lead unifies them). The test file's SHA-256 must equal the hash split.json recorded
for the test split, else evaluation is refused (exit 2): a test set edited after training
makes every number in the report meaningless. The criteria hash is compared too; a mismatch
does not stop the evaluation but marks the verdict "criteria edited after split".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunerail.errors import GuardrailError, Problem
from tunerail.store.store import hash_file

_HASH_KEYS = ("sha256", "hash", "content_hash", "file_hash")


def recorded_test_hash(manifest: dict[str, Any]) -> str | None:
    """The test split's hash: ``frozen.sha256`` / ``hashes["test.jsonl"]`` (tunerail split's
    layout), or ``splits.test.sha256``, ``hashes.test``, ``test.hash``."""
    candidates: list[Any] = []
    splits = manifest.get("splits")
    if isinstance(splits, dict):
        candidates.append(splits.get("test"))
    candidates.append(manifest.get("frozen"))
    for key in ("hashes", "content_hashes", "files"):
        block = manifest.get(key)
        if isinstance(block, dict):
            candidates += [block.get("test.jsonl"), block.get("test")]
    candidates.append(manifest.get("test"))
    for cand in candidates:
        if isinstance(cand, str) and len(cand) >= 32:
            return cand
        if isinstance(cand, dict):
            for key in _HASH_KEYS:
                if isinstance(cand.get(key), str):
                    return cand[key]
    return None


def check_frozen(test_path: str | Path | None, split_json: str | Path | None, criteria_hash: str) -> dict[str, Any]:
    """Return ``{"criteria_state": frozen|edited|unverified, "test_hash": ..., "recorded": ...}``.

    Raises ``GuardrailError`` when the test file's hash differs from the recorded one.
    """
    state: dict[str, Any] = {"criteria_state": "unverified", "test_hash": None, "recorded_test_hash": None,
                             "test_state": "unverified"}
    if test_path is not None and Path(test_path).is_file():
        state["test_hash"] = hash_file(test_path)
    if split_json is None:
        return state
    path = Path(split_json)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GuardrailError(Problem("split manifest not found", file=str(path),
                                     fix="pass the split.json written by `tunerail split`")) from None
    except ValueError as exc:
        raise GuardrailError(Problem(f"split manifest is not valid JSON ({exc})", file=str(path),
                                     fix="restore split.json from the store (`tunerail verify`)")) from None
    recorded = recorded_test_hash(manifest)
    state["recorded_test_hash"] = recorded
    if recorded is not None and state["test_hash"] is not None:
        if recorded != state["test_hash"]:
            raise GuardrailError(Problem(
                f"the test set changed since it was frozen: sha256 {state['test_hash'][:12]}... but split.json "
                f"recorded {recorded[:12]}...", file=str(test_path),
                fix="evaluate on the frozen test file from the split (or re-split, train and evaluate again); "
                    "never edit a test set after training"))
        state["test_state"] = "frozen"
    frozen_criteria = manifest.get("criteria_hash")
    if isinstance(frozen_criteria, str):
        state["criteria_state"] = "frozen" if frozen_criteria == criteria_hash else "edited"
        state["recorded_criteria_hash"] = frozen_criteria
    return state
