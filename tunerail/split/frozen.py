"""The frozen test set: every step that reads ``test.jsonl`` calls :func:`verify_frozen_split` first.

A test set edited after results were seen (a relabelled row, a dropped "bad" example) makes every
later score incomparable and usually optimistic. The split records the file's SHA-256 (and the
criteria frozen with it) in the store's content-addressed split record; ``split.json`` only points
at that record (``store.split_id``). A changed file, or a split.json that disagrees with the
record, is refused, never silently re-hashed: editing split.json cannot re-freeze anything.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

from tunerail.errors import GuardrailError, Problem, TunerailError
from tunerail.io import hash_file, read_json
from tunerail.store import Artifact, Store, artifact_id_for

_SHA = re.compile(r"^[0-9a-f]{64}$")


# split.json keys that are not part of the stored record (its own time stamp, and the pointer itself)
_POINTER_ONLY = ("created", "store")


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


class StoredSplit(NamedTuple):
    """What split.json points to: its own content, the store's split record, the store that holds it."""

    manifest: dict[str, Any]
    artifact: Artifact
    store: Store


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": leaf}`` for nested dicts, so a difference is named down to the field that changed."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_leaves(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _candidate_stores(split_json: Path | None, manifest: dict[str, Any], store: Store | None) -> list[Store]:
    """Where the split artifact may live: the given store first, then the root split.json names."""
    found = [store] if store is not None else []
    root = (manifest.get("store") or {}).get("root")
    if isinstance(root, str) and root:
        places = (
            [Path(root)] if Path(root).is_absolute() else [Path(root), *((p / root) for p in (split_json.parents if split_json else []))]
        )
        found += [Store(p) for p in places if (p / "manifests").is_dir()]
    return found


def stored_split(split_json: str | Path | dict[str, Any], store: Store | None = None, check: bool = True) -> StoredSplit:
    """The store's record of the split that ``split.json`` points to (and which store holds it).

    split.json is a pointer (``store.split_id``), never the authority: the artifact's manifest is
    content-addressed, so its hashes and criteria are what the split froze. Raises when split.json
    names no stored split, the store lacks it, its manifest was edited, or split.json disagrees
    with it (every differing field, both values, and the fix; ``check=False`` leaves that last
    comparison to the caller, :func:`split_json_problems`).
    """
    path = None if isinstance(split_json, dict) else Path(split_json)
    manifest = split_json if isinstance(split_json, dict) else read_json(Path(split_json), "split manifest")
    where = str(path) if path is not None else "split manifest"
    if not isinstance(manifest, dict):
        raise TunerailError(Problem("split manifest is not a JSON object", file=where, fix="re-run `tunerail split`"))
    split_id = (manifest.get("store") or {}).get("split_id")
    if not isinstance(split_id, str) or not split_id:
        raise GuardrailError(
            Problem(
                "split.json names no stored split (no store.split_id): nothing proves this is the test set that was frozen",
                file=where,
                field="store.split_id",
                fix="re-run `tunerail split` (it records the split in the store and points split.json at it)",
            )
        )
    stores = _candidate_stores(path, manifest, store)
    for candidate in stores:
        if (candidate.manifests / f"{split_id}.json").exists():
            artifact, found = candidate.get(split_id), candidate
            break
    else:
        tried = ", ".join(str(s.root) for s in stores) or "none found"
        raise GuardrailError(
            Problem(
                f"split {split_id[:12]} named by split.json is not in the store (stores tried: {tried})",
                file=where,
                field="store.split_id",
                fix="pass the store the split was written to (--store / store.path), or re-run `tunerail split`",
            )
        )
    problems = split_json_problems(manifest, artifact, where)
    if problems and check:
        raise GuardrailError(problems)
    return StoredSplit(manifest, artifact, found)


def split_json_problems(manifest: dict[str, Any], artifact: Artifact, where: str) -> list[Problem]:
    """Every way ``split.json`` disagrees with the stored split it points to (empty: it agrees)."""
    fix = f"split.json is only a pointer: restore it from the store's record (`tunerail lineage {artifact.short_id}`) or re-run `tunerail split`"
    if artifact.kind != "split" or artifact.id != artifact_id_for(
        artifact.kind, artifact.files, artifact.parents, artifact.transform, artifact.meta
    ):
        return [
            Problem(
                f"store manifest {artifact.short_id} is not an intact split record (kind {artifact.kind!r} or edited content)",
                file=where,
                fix="`tunerail verify` the store; re-run `tunerail split`",
            )
        ]
    problems = []
    ours = _leaves({k: v for k, v in manifest.items() if k not in _POINTER_ONLY})
    theirs = _leaves({k: v for k, v in artifact.meta.items() if k not in _POINTER_ONLY})
    ours["store.dataset_id"] = (manifest.get("store") or {}).get("dataset_id")
    theirs["store.dataset_id"] = (artifact.meta.get("store") or {}).get("dataset_id")
    for key in sorted(set(ours) | set(theirs)):
        if ours.get(key) != theirs.get(key):
            problems.append(
                Problem(
                    f"split.json {key} {_short(ours.get(key))} != {_short(theirs.get(key))} in store split {artifact.short_id}",
                    file=where,
                    field=key,
                    fix=fix,
                )
            )
    return problems


def criteria_frozen_in_store(store: Store, test_sha: str) -> dict[str, Any] | None:
    """The criteria the store first froze with this test set (None: it never froze it).

    ``{"criteria", "criteria_hash", "test_sha256", "split_id"}`` from the oldest intact split record
    whose frozen test file has this SHA-256, whatever folder or split.json it was written to: a
    copied folder or a forged split.json cannot make looser criteria the frozen ones.
    """
    for artifact in store.list("split", skip_unreadable=True):
        frozen = artifact.meta.get("frozen") or {}
        intact = artifact.id == artifact_id_for(artifact.kind, artifact.files, artifact.parents, artifact.transform, artifact.meta)
        if intact and frozen.get("sha256") == test_sha and isinstance(artifact.meta.get("criteria_hash"), str):
            return {
                "criteria": artifact.meta.get("criteria", {}),
                "criteria_hash": artifact.meta["criteria_hash"],
                "test_sha256": test_sha,
                "split_id": artifact.id,
            }
    return None


def _expected(test: Path, reference: Any, store: Store | None = None) -> tuple[str, str]:
    """(expected sha256, where it came from): always the store's record unless a bare hash is given."""
    if isinstance(reference, str) and _SHA.match(reference):
        return reference, "the given hash"
    if isinstance(reference, Store):
        store = reference
        beside = test.parent / "split.json"
        if beside.exists():
            reference = beside
        else:  # no split.json: the newest stored split that froze a file of this name
            candidates = [a for a in store.list("split") if test.name in a.files]
            if not candidates:
                raise TunerailError(
                    Problem(
                        "no stored split records this test file", file=str(test), fix="run `tunerail split` to create and freeze the split"
                    )
                )
            return candidates[-1].files[test.name]["sha256"], f"store {store.root}, split {candidates[-1].short_id}"
    if reference is None:
        reference = test.parent / "split.json"
    if not isinstance(reference, dict) and not Path(reference).exists():
        raise TunerailError(
            Problem(
                "split.json not found: cannot check that the test set is unchanged",
                file=str(reference),
                fix="pass the split.json written by `tunerail split`",
            )
        )
    artifact = stored_split(reference, store).artifact
    if test.name not in artifact.files:
        raise TunerailError(Problem(f"split {artifact.short_id} has no file {test.name!r}", file=str(test)))
    return artifact.files[test.name]["sha256"], f"store {artifact.short_id} (the split's record)"


def verify_frozen_split(
    path_or_dir: str | Path, split_json_or_store: str | Path | dict | Store | None = None, store: Store | None = None
) -> str:
    """Check that the test file is byte-identical to the one the split froze; return its SHA-256.

    Parameters
    ----------
    path_or_dir : ``test.jsonl`` or the split folder containing it.
    split_json_or_store : ``split.json`` path or its parsed dict (default: the one beside the file),
        a :class:`~tunerail.store.Store` (trusted copy of the hash), or the expected hex digest.
        A split.json is only the pointer: the hash compared is the one in the store's split record
        (:func:`stored_split`), and a split.json that disagrees with that record is refused.
    store : the store to look the split up in first (default: the root split.json names).

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
    expected, source = _expected(test, split_json_or_store, store)
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


def split_problems(folder: str | Path, store: Store | None = None) -> list[Problem]:
    """Every split file of ``folder`` that is missing or differs from the store's record of the split.

    split.json fields that disagree with the stored record are problems too (a forged split.json
    with recomputed hashes is caught here, not trusted).
    """
    folder = Path(folder)
    where = str(folder / "split.json")
    try:
        manifest, artifact, _ = stored_split(folder / "split.json", store, check=False)
    except GuardrailError as exc:  # no pointer or a missing artifact: nothing to compare the files with
        return exc.problems
    problems = split_json_problems(manifest, artifact, where)
    frozen_file = (artifact.meta.get("frozen") or {}).get("file")
    for name, entry in sorted(artifact.files.items()):
        path = folder / name
        if not path.exists():
            problems.append(Problem(f"missing split file {name!r}", file=str(path), fix="re-run `tunerail split`"))
        elif hash_file(path) != entry["sha256"]:
            problems.append(
                Problem(
                    f"{'the FROZEN test set' if name == frozen_file else name} changed after the split "
                    f"(SHA-256 differs from store split {artifact.short_id}, recorded by {where})",
                    file=str(path),
                    fix=f"restore the original file (Store.export({artifact.short_id!r}, DIR)) or re-run `tunerail split`",
                )
            )
    return problems
