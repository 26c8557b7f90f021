"""Content-addressed, versioned store for datasets, splits, checkpoints and reports.

Layout under the store root (default ``.tunerail/store``)::

    objects/ab/cdef...        file blobs, named by the SHA-256 of their bytes (immutable)
    manifests/<id>.json       one manifest per artifact: kind, files (name -> sha256, size),
                              parents, transform, meta, created. The id is the SHA-256 of the
                              canonical content (files + kind), so identical content is stored once.

Every write goes to a temp file in the same folder and is renamed into place, so a crash never
leaves a half file under its final name; a lock file serialises manifest writes between processes.
"""

from tunerail.store.store import EXPORT_MANIFEST, LINEAGE_KINDS, Artifact, Store, artifact_id_for, verify_folder

__all__ = ["EXPORT_MANIFEST", "LINEAGE_KINDS", "Artifact", "Store", "artifact_id_for", "verify_folder"]
