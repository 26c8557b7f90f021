"""Files beside the data are checked against the store's copy, never against themselves.

An adapter folder, a split folder or any exported artifact is only trusted when every file has
the SHA-256 its artifact's manifest (content-addressed, so an edit changes the id) records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunerail.errors import GuardrailError, Problem
from tunerail.io import hash_file
from tunerail.store.store import Artifact, Store, artifact_id_for

ALLOW_CHANGED_ADAPTER = "--allow-changed-adapter"


def folder_problems(folder: str | Path, artifact: Artifact, fix: str) -> list[Problem]:
    """Every file of ``artifact`` missing or different in ``folder``, and every file it does not record."""
    folder = Path(folder)
    problems = []
    if artifact.id != artifact_id_for(artifact.kind, artifact.files, artifact.parents, artifact.transform, artifact.meta):
        problems.append(Problem(f"store manifest of {artifact.kind} {artifact.short_id} was edited", fix="`tunerail verify` the store"))
    for name, entry in sorted(artifact.files.items()):
        path = folder / name
        if not path.is_file():
            problems.append(Problem(f"missing file {name!r} of {artifact.kind} {artifact.short_id}", file=str(path), fix=fix))
        elif (actual := hash_file(path)) != entry["sha256"]:
            problems.append(
                Problem(
                    f"{name} differs from the store's copy in {artifact.kind} {artifact.short_id}: "
                    f"SHA-256 {actual[:12]} != {entry['sha256'][:12]} recorded",
                    file=str(path),
                    fix=fix,
                )
            )
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.relative_to(folder).as_posix() not in artifact.files:
            problems.append(Problem(f"file not in the store's {artifact.kind} {artifact.short_id}", file=str(path), fix=fix))
    return problems


def recorded_checkpoint(adapter_dir: str | Path, store: Store) -> tuple[str | None, Artifact | None]:
    """``(checkpoint id, artifact)`` that ``train.json`` beside the adapter records (None: no record)."""
    train_json = Path(adapter_dir).parent / "train.json"
    try:
        checkpoint_id = json.loads(train_json.read_text(encoding="utf-8")).get("checkpoint_id")
    except (OSError, ValueError, AttributeError):
        return None, None
    if not isinstance(checkpoint_id, str) or not checkpoint_id:
        return None, None
    found = store.manifests / f"{checkpoint_id}.json"
    return checkpoint_id, store.get(checkpoint_id) if found.is_file() else None


def adapter_problems(adapter_dir: str | Path, store: Store) -> tuple[str | None, list[Problem]]:
    """``(recorded checkpoint id, problems)``: how the adapter folder differs from its stored checkpoint.

    No ``checkpoint_id`` in the ``train.json`` beside the adapter: ``(None, [])``, nothing to compare.
    """
    checkpoint_id, artifact = recorded_checkpoint(adapter_dir, store)
    if checkpoint_id is None:
        return None, []
    if artifact is None:
        return checkpoint_id, [
            Problem(
                f"checkpoint {checkpoint_id[:12]} recorded in train.json is not in store {store.root}",
                file=str(Path(adapter_dir).parent / "train.json"),
                fix=f"use the run's config (store.path), or pass {ALLOW_CHANGED_ADAPTER} (recorded)",
            )
        ]
    fix = f"restore the adapter (Store.export({checkpoint_id[:12]!r}, DIR)), or pass {ALLOW_CHANGED_ADAPTER} (recorded)"
    return checkpoint_id, folder_problems(adapter_dir, artifact, fix)


def check_adapter(adapter_dir: str | Path | None, store: Store, allow_changed: bool = False) -> dict[str, Any]:
    """Refuse an adapter whose files are not the checkpoint its run recorded; return what was checked.

    Returns ``{"state": "matches" | "changed, used anyway (...)" | "unrecorded" | "no adapter",
    "checkpoint_id", "problems"}`` (for report lineage). ``allow_changed`` uses a changed adapter
    anyway; the returned state records that the check was overridden.

    Raises
    ------
    GuardrailError
        A file differs from, is missing from, or is not in the recorded checkpoint, or the
        checkpoint is not in ``store``; each problem names the file and both hashes.
    """
    if adapter_dir is None:
        return {"state": "no adapter", "checkpoint_id": None, "problems": []}
    checkpoint_id, problems = adapter_problems(adapter_dir, store)
    if checkpoint_id is None:
        return {"state": "unrecorded", "checkpoint_id": None, "problems": []}
    if problems and not allow_changed:
        raise GuardrailError(problems)
    state = f"changed, used anyway ({ALLOW_CHANGED_ADAPTER})" if problems else "matches"
    return {"state": state, "checkpoint_id": checkpoint_id, "problems": [str(p) for p in problems]}
