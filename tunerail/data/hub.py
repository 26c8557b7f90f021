"""Hugging Face Hub datasets as ``data.path``: which paths are Hub ids, loading one, pinning its commit.

``data.path: tatsu-lab/alpaca`` (with ``data.subset``, ``data.split``, ``data.revision``) is read with
``datasets`` and its rows go through the same record loading and quarantine as a ``save_to_disk``
folder (``tunerail.data.loaders``). An existing local path always wins; otherwise an ``owner/name``
path is a Hub id; anything else stays a (missing) local path.

How the resolved commit is found (``HubSource.commit``): ``datasets.load_dataset`` is
``load_dataset_builder`` + ``download_and_prepare`` + ``as_dataset``; we make the same three calls so
we can read ``builder.hash``. Online, ``datasets`` pins the revision to the Hub commit sha before it
reads a file (``HubDatasetModuleFactory(commit_hash=...)``) and that sha becomes ``builder.hash``.
Offline, ``datasets`` reloads the newest cached copy, whose cache folder
(``<cache>/owner___name/<subset>/<version>/<sha>``) is named after the same commit sha; ``builder.hash``
is that folder name. Offline the requested revision is NOT honoured by ``datasets`` (it takes the
newest cached copy), so a requested full commit sha that differs from the cached one is refused.
For a local dataset repository folder ``builder.hash`` is a fingerprint of its data files.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tunerail.errors import DataError, Problem

# owner/name as the Hub spells repo ids (letters, digits, '-', '_', '.'); no scheme, no extra slashes.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
# A missing ``data/train.jsonl`` is a missing file, not a Hub repo named "train.jsonl".
FILE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".txt", ".parquet", ".pq", ".gz")
SAVE_TO_DISK_MARKERS = ("dataset_info.json", "dataset_dict.json", "state.json")
FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
OFFLINE_FIX = (
    "to download it set HF_DATASETS_OFFLINE=0 and HF_HUB_OFFLINE=0 (network needed once; it is cached after), "
    "log in with `hf auth login` for a private or gated dataset, or check the id, data.subset and data.revision"
)
FOLDER_FIX = "a dataset repository folder needs data files (.jsonl/.csv/.parquet...) and, for subsets, a README `configs:` header"


@dataclass(frozen=True)
class HubSource:
    """A Hub dataset as the config names it; ``commit`` and ``split`` are filled in by ``pin``."""

    id: str
    subset: str | None = None
    split: str | None = None
    revision: str | None = None
    commit: str | None = None

    def __str__(self) -> str:
        # The name rows, findings and messages use for this input (like a file path for a file).
        parts = [f"subset={self.subset}"] if self.subset else []
        parts += [f"split={self.split}"] if self.split else []
        return f"hub:{self.id}@{self.revision or 'main'}" + (f" ({', '.join(parts)})" if parts else "")

    def manifest(self) -> dict[str, Any]:
        """What a snapshot records: id, subset, split, requested revision and resolved commit."""
        return asdict(self)


def is_hub_id(path: str | Path) -> bool:
    """True for an ``owner/name`` string that is not an existing local path nor a data file name."""
    text = str(path)
    return bool(HUB_ID.match(text)) and not text.lower().endswith(FILE_SUFFIXES) and not Path(text).exists()


def is_repo_folder(path: Path) -> bool:
    """A local folder laid out as a Hub dataset repository (data files, maybe a README with ``configs:``).

    ``load_dataset`` reads such a folder as it reads the repo; a ``save_to_disk`` folder is not one.
    """
    if not path.is_dir() or any((path / marker).exists() for marker in SAVE_TO_DISK_MARKERS):
        return False
    return (path / "README.md").is_file() or any(p.suffix.lower() in FILE_SUFFIXES for p in path.rglob("*") if p.is_file())


def as_source(path: str | Path | HubSource) -> Path | HubSource:
    """A path as given (CLI argument, API call): a Hub dataset when it is an ``owner/name`` not found locally."""
    if isinstance(path, HubSource):
        return path
    return HubSource(str(path)) if is_hub_id(path) or is_repo_folder(Path(path)) else Path(path)


def source_for(config: Any) -> Path | HubSource | None:
    """The input ``config.data`` names: a local path (relative to the config file) or a Hub dataset."""
    data = config.data
    local = config.resolve(data.path)
    if data.path is None or local is None:
        return None
    if is_repo_folder(local):
        return HubSource(str(local), data.subset, data.split, data.revision)
    if local.exists() or not is_hub_id(data.path):
        return local  # a missing non-Hub path keeps today's "file not found"
    return HubSource(data.path, data.subset, data.split, data.revision)


def _builder(source: HubSource) -> Any:
    from datasets import load_dataset_builder

    try:  # datasets raises ConnectionError, FileNotFoundError (DatasetNotFoundError), ValueError... when it cannot resolve
        return load_dataset_builder(source.id, name=source.subset, revision=source.revision)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        folder = Path(source.id).is_dir()
        raise DataError(
            Problem(
                f"{'dataset folder' if folder else 'Hub dataset'} {source.id!r} (subset {source.subset or 'default'}, revision {source.revision or 'main'}) "
                f"could not be loaded: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                field="data.path",
                fix=FOLDER_FIX if folder else OFFLINE_FIX,
            )
        ) from None


def _pinned(source: HubSource, builder: Any) -> HubSource:
    commit = str(builder.hash) if builder.hash else None
    if source.revision and FULL_SHA.match(source.revision) and commit and commit != source.revision:
        raise DataError(
            Problem(
                f"Hub dataset {source.id!r}: revision {source.revision} was asked for but commit {commit} is what is "
                "available (offline, datasets only reads the newest cached copy)",
                field="data.revision",
                fix=OFFLINE_FIX,
            )
        )
    if source.commit and commit != source.commit:
        raise DataError(
            Problem(
                f"the Hub dataset {source.id!r} moved from commit {source.commit} to {commit} during the run",
                field="data.revision",
                fix="pin data.revision to a commit sha and run again",
            )
        )
    splits = list(builder.info.splits or {})
    split = source.split or ("train" if "train" in splits or not splits else splits[0])
    if splits and split not in splits:
        raise DataError(
            Problem(
                f"Hub dataset {source.id!r} has no split {split!r}; its splits: {', '.join(splits)}",
                field="data.split",
                fix=f"set data.split to one of: {', '.join(splits)}",
            )
        )
    return replace(source, commit=commit, split=split)


def open_dataset(source: HubSource) -> tuple[Any, HubSource]:
    """Load the dataset (``datasets.Dataset``) and return it with the source pinned to the commit read.

    Raises DataError naming the id, revision and the fix when it cannot be loaded (offline, private,
    wrong name, unknown subset or split); a source already pinned must still be at its commit.
    """
    builder = _builder(source)
    pinned = _pinned(source, builder)
    try:
        builder.download_and_prepare()
        dataset = builder.as_dataset(split=pinned.split)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise DataError(
            Problem(f"Hub dataset {source.id!r} could not be read: {type(exc).__name__}: {exc}", field="data.path", fix=OFFLINE_FIX)
        ) from None
    return dataset, pinned


def pin(source: HubSource) -> HubSource:
    """Resolve ``source`` to the commit (and split) that loading it reads now."""
    return open_dataset(source)[1]


def moved_since(store: Any, source: HubSource) -> str | None:
    """Name a moved dataset: the newest stored snapshot of the same id/subset/split at another commit.

    ``store`` is a ``tunerail.store.Store``; snapshots record ``meta["hub"]`` (``HubSource.manifest``).
    """
    key = (source.id, source.subset, source.split)
    for artifact in reversed(store.list("dataset", skip_unreadable=True)):
        hub = artifact.meta.get("hub")
        if isinstance(hub, dict) and (hub.get("id"), hub.get("subset"), hub.get("split")) == key:
            if hub.get("commit") == source.commit:
                return None
            return (
                f"the Hub dataset {source.id} moved from commit {hub.get('commit')} to {source.commit} since the last run "
                f"(snapshot {artifact.id[:12]}); pin data.revision to a commit to keep it fixed"
            )
    return None
