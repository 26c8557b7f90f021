"""The store implementation; see the package docstring for the layout and guarantees."""

from __future__ import annotations

import builtins  # Store.list shadows the builtin in annotations inside the class
import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from filelock import FileLock

from tunerail.errors import Problem, TunerailError
from tunerail.io import hash_file, write_atomic

CHUNK = 8 * 1024 * 1024
WORKERS = min(8, os.cpu_count() or 1)

# The lineage record. Every artifact's manifest says what it is (``kind``), what it was made from
# (``parents``: artifact ids), how (``transform``) and with what (``meta``). The chain that
# ``tunerail lineage`` prints follows parents back to the source files named in a dataset's
# ``meta["sources"]``: source files -> dataset -> split -> config -> run -> checkpoint -> report.
LINEAGE_KINDS = ("dataset", "split", "config", "run", "checkpoint", "report")
EXPORT_MANIFEST = "tunerail.manifest.json"


SMALL_FILE = 1024 * 1024
BATCH_SYNC = 64  # adding more files than this: one os.sync() instead of one fsync per file


def _batched(items: list, workers: int) -> list[list]:
    """Split ``items`` into a few chunks per worker (one pool task per chunk, not per file)."""
    size = max(1, -(-len(items) // (workers * 4)))
    return [items[k : k + size] for k in range(0, len(items), size)]


def _parallel(fn: Any, items: list) -> list:
    """``[fn(x) for x in items]`` on a thread pool when it helps (hashing and I/O release the GIL)."""
    if len(items) < 2 or WORKERS < 2:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(WORKERS) as pool:
        chunks = pool.map(lambda chunk: [fn(x) for x in chunk], _batched(items, WORKERS))
        return [result for chunk in chunks for result in chunk]


def _copy_and_hash(src: Path, dst_fd: int) -> tuple[str, int]:
    """Copy ``src`` into ``dst_fd`` and hash it in the same pass (each byte read once)."""
    digest = hashlib.sha256()
    if os.path.getsize(src) <= SMALL_FILE:
        with open(src, "rb", buffering=0) as handle:
            data = handle.readall()
        digest.update(data)
        view, written = memoryview(data), 0
        while written < len(data):
            written += os.write(dst_fd, view[written:])
        return digest.hexdigest(), len(data)
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    size = 0
    with open(src, "rb", buffering=0) as handle:
        while n := handle.readinto(buffer):
            chunk = view[:n]
            digest.update(chunk)
            written = 0
            while written < n:
                written += os.write(dst_fd, chunk[written:])
            size += n
    return digest.hexdigest(), size


@dataclass
class Artifact:
    """A stored artifact's manifest (what ``tunerail log`` lists and ``lineage`` walks)."""

    id: str
    kind: str  # dataset | split | checkpoint | config | run | report | ...
    files: dict[str, dict[str, Any]]  # name -> {"sha256", "size"}
    parents: list[str] = field(default_factory=list)
    transform: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def size(self) -> int:
        return sum(int(f["size"]) for f in self.files.values())

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


class Store:
    """A folder of immutable, hashed artifacts with manifests naming their parents.

    Parameters
    ----------
    root : path, default ``.tunerail/store``
        Created on first write.
    """

    def __init__(self, root: str | Path = ".tunerail/store"):
        self.root = Path(root)

    # -- paths -----------------------------------------------------------------------------
    @property
    def objects(self) -> Path:
        return self.root / "objects"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    def object_path(self, sha256: str) -> Path:
        return self.objects / sha256[:2] / sha256[2:]

    def _lock(self) -> FileLock:
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / ".lock"))

    # -- blobs -----------------------------------------------------------------------------
    def _stage(self, path: Path, fsync: bool) -> tuple[str, int, str]:
        """Copy + hash ``path`` into an ``.incoming.*`` temp file; returns (sha256, size, temp path).

        ``_commit`` then renames it to its hash: a crash leaves at most an ``.incoming.*`` temp
        file, never a blob whose name lies about its content.
        """
        self.objects.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".incoming.", dir=self.objects)
        try:
            try:
                sha, size = _copy_and_hash(path, fd)
                if fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            os.unlink(tmp)
            raise
        return sha, size, tmp

    def _commit(self, sha: str, tmp: str) -> None:
        """Rename a durable temp file to its content name (or drop it: identical content is stored once)."""
        final = self.object_path(sha)
        try:
            if final.exists():
                os.unlink(tmp)
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp, 0o444)
                os.replace(tmp, final)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        sha = hashlib.sha256(data).hexdigest()
        final = self.object_path(sha)
        if not final.exists():
            write_atomic(final, data)
            os.chmod(final, 0o444)
        return sha, len(data)

    # -- artifacts -------------------------------------------------------------------------
    def add(
        self,
        kind: str,
        files: Mapping[str, str | Path | bytes],
        *,
        parents: Iterable[str] = (),
        transform: str = "",
        meta: dict[str, Any] | None = None,
    ) -> Artifact:
        """Store ``files`` (name -> path or bytes) as one artifact and return its manifest.

        The id is the SHA-256 of the whole manifest but its creation time (``artifact_id_for``);
        the same manifest gets the same id and is kept as it is; identical blobs are stored once.
        """
        items = sorted(files.items())
        # Many files: stage them all without fsync, flush once (os.sync), then rename each to its
        # hash. Few files: fsync each. Either way no blob gets its final name before its bytes
        # are on disk, and the manifest that names them is written last.
        batch = len(items) > BATCH_SYNC

        def stage(source: str | Path | bytes) -> tuple[str, int, str | None]:
            if isinstance(source, bytes):
                return (*self.put_bytes(source), None)
            return self._stage(Path(source), fsync=not batch)

        staged = _parallel(stage, [source for _, source in items])
        if batch and any(tmp for _, _, tmp in staged):
            os.sync()
        for sha, _, tmp in staged:
            if tmp is not None:
                self._commit(sha, tmp)
        entries = {name: {"sha256": sha, "size": size} for (name, _), (sha, size, _) in zip(items, staged)}
        # JSON round trip: the id must be computed from the meta exactly as the manifest stores it.
        plain_meta = json.loads(json.dumps(meta or {}, sort_keys=True, ensure_ascii=False, default=str))
        artifact_id = artifact_id_for(kind, entries, sorted(set(parents)), transform, plain_meta)
        artifact = Artifact(
            artifact_id, kind, entries, sorted(set(parents)), transform, plain_meta, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        )
        with self._lock():
            path = self.manifests / f"{artifact_id}.json"
            if path.exists():
                return self.get(artifact_id)
            write_atomic(path, artifact.to_json())
        return artifact

    def add_dataset(
        self,
        records: Iterable[Any],
        sources: Iterable[str | Path] = (),
        parents: Iterable[str] = (),
        transform: str = "import",
        meta: dict[str, Any] | None = None,
    ) -> Artifact:
        """Store a dataset snapshot as canonical JSONL (``rows.jsonl``), addressed by its content.

        Canonical: one row per line, the row's own columns with sorted keys, compact separators,
        UTF-8; provenance (``_tunerail``) is left out, so the same rows give the same blob
        whichever file or step they came from. ``sources`` are hashed into ``meta["sources"]``:
        the first links of the lineage chain.
        """
        lines = []
        for row in records:
            fields = row.fields if hasattr(row, "fields") else row
            clean = {k: v for k, v in fields.items() if k != "_tunerail"}
            lines.append(json.dumps(clean, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str))
        blob = ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8")
        source_meta = {str(p): {"sha256": hash_file(p), "size": Path(p).stat().st_size} for p in sources}
        full_meta = {"rows": len(lines), "sources": source_meta, **(meta or {})}
        return self.add("dataset", {"rows.jsonl": blob}, parents=parents, transform=transform, meta=full_meta)

    def add_folder(self, kind: str, folder: str | Path, **kwargs: Any) -> Artifact:
        """Store every file below ``folder`` under its relative path (checkpoints, adapters)."""
        folder = Path(folder)
        files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
        if not files:
            raise TunerailError(Problem("nothing to store: the folder is empty", file=str(folder)))
        return self.add(kind, files, **kwargs)

    def get(self, ref: str) -> Artifact:
        """Find an artifact by full id or unique prefix."""
        path = self.manifests / f"{ref}.json"
        if not path.exists():
            matches = sorted(self.manifests.glob(f"{ref}*.json")) if self.manifests.exists() and ref else []
            if len(matches) != 1:
                what = "no artifact" if not matches else f"{len(matches)} artifacts"
                raise TunerailError(Problem(f"{what} with id {ref!r} in store {self.root}", fix="`tunerail log` lists the stored ids"))
            path = matches[0]
        return _load_manifest(path)

    def list(self, kind: str | None = None, skip_unreadable: bool = False) -> list[Artifact]:
        """Every artifact (of ``kind``), oldest first; an unreadable manifest raises unless skipped."""
        if not self.manifests.exists():
            return []
        items = []
        for path in self.manifests.glob("*.json"):
            try:
                items.append(_load_manifest(path))
            except TunerailError:
                if not skip_unreadable:
                    raise
        if kind:
            known = sorted(set(LINEAGE_KINDS) | {a.kind for a in items})
            if kind not in known:  # a typo must not read as "no artifacts of that kind"
                raise TunerailError(Problem(f"unknown kind {kind!r}", field="--kind", fix=f"use one of: {', '.join(known)}"))
            items = [a for a in items if a.kind == kind]
        rank = {name: k for k, name in enumerate(LINEAGE_KINDS)}  # same second: lineage order
        return sorted(items, key=lambda a: (a.created, rank.get(a.kind, len(rank)), a.id))

    def open(self, ref: str, name: str) -> Path:
        """Path of one stored file (read-only)."""
        artifact = self.get(ref)
        if name not in artifact.files:
            raise TunerailError(Problem(f"artifact {artifact.short_id} has no file {name!r}", fix=f"files: {', '.join(artifact.files)}"))
        return self.object_path(artifact.files[name]["sha256"])

    def children(self, ref: str) -> builtins.list[Artifact]:
        """Artifacts made from ``ref`` (one step down the lineage)."""
        artifact_id = self.get(ref).id
        return [a for a in self.list() if artifact_id in a.parents]

    def export(self, ref: str, dest: str | Path) -> Path:
        """Copy an artifact's files out to ``dest`` (e.g. to load a checkpoint).

        The manifest goes along as ``tunerail.manifest.json``, so ``tunerail verify DEST`` can
        re-hash the exported copy later.
        """
        import shutil

        artifact = self.get(ref)
        dest = Path(dest)
        for name, entry in artifact.files.items():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.object_path(entry["sha256"]), target)
            os.chmod(target, 0o644)
        write_atomic(dest / EXPORT_MANIFEST, artifact.to_json())
        return dest

    def verify(self, ref: str | None = None) -> builtins.list[Problem]:
        """Re-hash stored files (in parallel); one problem per missing or corrupted file or manifest."""
        problems: builtins.list[Problem] = []
        if ref:
            artifacts = [self.get(ref)]
        else:  # an unreadable manifest is one problem among others, not the end of the check
            artifacts = []
            for path in sorted(self.manifests.glob("*.json")) if self.manifests.exists() else []:
                try:
                    artifacts.append(_load_manifest(path))
                except TunerailError as exc:
                    problems += exc.problems
        checks: builtins.list[tuple[Artifact, str, str, Path]] = []
        for artifact in artifacts:
            if artifact.id != _id_of(artifact):
                problems.append(
                    Problem(
                        f"manifest of {artifact.kind} {artifact.short_id} was edited: its content "
                        "(files, parents, transform or meta) no longer matches its id",
                        file=str(self.manifests / f"{artifact.id}.json"),
                        fix="restore the manifest from a backup or re-run the step that made it",
                    )
                )
            checks += [(artifact, name, entry["sha256"], self.object_path(entry["sha256"])) for name, entry in artifact.files.items()]
        problems += _check_files([(f"{a.kind} {a.short_id}", name, sha, path) for a, name, sha, path in checks])
        return problems

    def lineage(self, ref: str) -> builtins.list[Artifact]:
        """The artifact and all its ancestors, oldest first (source -> ... -> ref)."""
        seen: dict[str, Artifact] = {}
        order: builtins.list[Artifact] = []

        def visit(artifact_id: str) -> None:
            if artifact_id in seen:
                return
            artifact = self.get(artifact_id)
            seen[artifact_id] = artifact
            for parent in artifact.parents:
                visit(parent)
            order.append(artifact)

        visit(self.get(ref).id)
        return order


def artifact_id_for(
    kind: str, files: dict[str, dict[str, Any]], parents: Iterable[str] = (), transform: str = "", meta: dict[str, Any] | None = None
) -> str:
    """An artifact's id: SHA-256 of its WHOLE manifest but the creation time.

    Kind, files (name -> sha256), parents, transform and meta are all covered, so an edited
    ``meta``, ``parents`` or ``transform`` is caught by ``verify`` like an edited file list, and
    every id that names this artifact (split.json, a child's parents) pins what it says.
    Identical blobs are still stored once; identical manifests get the same id.
    """
    content = json.dumps(
        {
            "kind": kind,
            "files": {k: v["sha256"] for k, v in files.items()},
            "parents": sorted(parents),
            "transform": transform,
            "meta": meta or {},
        },
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(content.encode()).hexdigest()


def _load_manifest(path: Path) -> Artifact:
    """Read one manifest; a damaged one is a clear problem naming the file, never a traceback."""
    try:
        return Artifact(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:  # invalid JSON, bad UTF-8, missing or unknown keys
        raise TunerailError(
            Problem(
                f"unreadable store manifest ({type(exc).__name__}: {exc})",
                file=str(path),
                fix="restore it from a backup, or delete it and re-run the step that made it",
            )
        ) from None


def _id_of(artifact: Artifact) -> str:
    return artifact_id_for(artifact.kind, artifact.files, artifact.parents, artifact.transform, artifact.meta)


def _check_files(checks: list[tuple[str, str, str, Path]]) -> list[Problem]:
    """Hash every (owner, name, expected sha256, path) in a thread pool; problems in input order."""

    def one(item: tuple[str, str, str, Path]) -> Problem | None:
        owner, name, sha, path = item
        fix = "restore it from a backup or re-run the step that made it"
        try:
            actual = hash_file(path)
        except (FileNotFoundError, IsADirectoryError):
            return Problem(f"missing file {name!r} of {owner}", file=str(path), fix=fix)
        if actual != sha:
            return Problem(f"corrupted file {name!r} of {owner}: SHA-256 does not match the manifest", file=str(path), fix=fix)
        return None

    return [p for p in _parallel(one, checks) if p is not None]


def verify_folder(folder: str | Path) -> tuple[Artifact, list[Problem]]:
    """Re-hash an exported artifact folder against its ``tunerail.manifest.json``."""
    folder = Path(folder)
    manifest = folder / EXPORT_MANIFEST
    if not manifest.exists():
        raise TunerailError(
            Problem(
                f"no {EXPORT_MANIFEST} in this folder: nothing to verify against",
                file=str(folder),
                fix="pass a store root, an artifact id, or a folder written by Store.export",
            )
        )
    try:
        artifact = Artifact(**json.loads(manifest.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise TunerailError(Problem(f"unreadable manifest: {exc}", file=str(manifest))) from None
    checks = [(f"{artifact.kind} {artifact.short_id}", name, entry["sha256"], folder / name) for name, entry in artifact.files.items()]
    problems = _check_files(checks)
    if artifact.id != _id_of(artifact):
        problems.insert(
            0,
            Problem(
                "the manifest was edited: its content (files, parents, transform or meta) no longer matches its id", file=str(manifest)
            ),
        )
    return artifact, problems
