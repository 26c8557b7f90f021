"""The store implementation; see the package docstring for the layout and guarantees."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from filelock import FileLock

from tunerail.errors import Problem, TunerailError

CHUNK = 8 * 1024 * 1024


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_DEFAULT_MODE = _umask_mode()


def hash_file(path: str | Path) -> str:
    """SHA-256 of a file, streamed in 8 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` via a temp file + fsync + rename: readers see all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _DEFAULT_MODE)  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


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
    def put_file(self, path: str | Path) -> tuple[str, int]:
        """Copy a file into the object store while hashing it (one read); returns (sha256, size)."""
        path = Path(path)
        self.objects.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(prefix=".incoming.", dir=self.objects)
        try:
            with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            sha = digest.hexdigest()
            final = self.object_path(sha)
            if final.exists():
                os.unlink(tmp)  # identical content is stored once
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
                os.chmod(final, 0o444)
            return sha, size
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
    def add(self, kind: str, files: dict[str, str | Path | bytes], *, parents: Iterable[str] = (),
            transform: str = "", meta: dict[str, Any] | None = None) -> Artifact:
        """Store ``files`` (name -> path or bytes) as one artifact and return its manifest.

        The id is the SHA-256 of ``kind`` + the sorted (name, sha256) pairs: the same content
        gets the same id, whatever its parents; an existing manifest is kept as it is.
        """
        entries: dict[str, dict[str, Any]] = {}
        for name, source in sorted(files.items()):
            sha, size = self.put_bytes(source) if isinstance(source, bytes) else self.put_file(source)
            entries[name] = {"sha256": sha, "size": size}
        content = json.dumps({"kind": kind, "files": {k: v["sha256"] for k, v in entries.items()}}, sort_keys=True)
        artifact_id = hashlib.sha256(content.encode()).hexdigest()
        artifact = Artifact(artifact_id, kind, entries, sorted(set(parents)), transform, meta or {},
                            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        with self._lock():
            path = self.manifests / f"{artifact_id}.json"
            if path.exists():
                return self.get(artifact_id)
            write_atomic(path, artifact.to_json())
        return artifact

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
                raise TunerailError(Problem(f"{what} with id {ref!r} in store {self.root}",
                                            fix="`tunerail log` lists the stored ids"))
            path = matches[0]
        data = json.loads(path.read_text(encoding="utf-8"))
        return Artifact(**data)

    def list(self, kind: str | None = None) -> list[Artifact]:
        if not self.manifests.exists():
            return []
        items = [Artifact(**json.loads(p.read_text(encoding="utf-8"))) for p in self.manifests.glob("*.json")]
        if kind:
            items = [a for a in items if a.kind == kind]
        return sorted(items, key=lambda a: (a.created, a.id))

    def open(self, ref: str, name: str) -> Path:
        """Path of one stored file (read-only)."""
        artifact = self.get(ref)
        if name not in artifact.files:
            raise TunerailError(Problem(f"artifact {artifact.short_id} has no file {name!r}",
                                        fix=f"files: {', '.join(artifact.files)}"))
        return self.object_path(artifact.files[name]["sha256"])

    def export(self, ref: str, dest: str | Path) -> Path:
        """Copy an artifact's files out to ``dest`` (e.g. to load a checkpoint)."""
        import shutil

        artifact = self.get(ref)
        dest = Path(dest)
        for name, entry in artifact.files.items():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.object_path(entry["sha256"]), target)
        return dest

    def verify(self, ref: str | None = None) -> list[Problem]:
        """Re-hash stored files; one problem per missing or corrupted file."""
        artifacts = [self.get(ref)] if ref else self.list()
        problems: list[Problem] = []
        for artifact in artifacts:
            for name, entry in artifact.files.items():
                path = self.object_path(entry["sha256"])
                if not path.exists():
                    problems.append(Problem(f"missing file {name!r} of {artifact.kind} {artifact.short_id}",
                                            file=str(path), fix="restore it from a backup or re-run the step that made it"))
                elif hash_file(path) != entry["sha256"]:
                    problems.append(Problem(f"corrupted file {name!r} of {artifact.kind} {artifact.short_id}: "
                                            f"SHA-256 does not match the manifest", file=str(path),
                                            fix="restore it from a backup or re-run the step that made it"))
        return problems

    def lineage(self, ref: str) -> list[Artifact]:
        """The artifact and all its ancestors, oldest first (source -> ... -> ref)."""
        seen: dict[str, Artifact] = {}
        order: list[Artifact] = []

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
