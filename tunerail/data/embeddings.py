"""Sentence embeddings with a content-hash cache, so re-running the doctor costs nothing.

Default encoder: the bundled all-MiniLM-L6-v2 (``bundled:minilm``), loaded offline.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

_MODELS: dict[str, object] = {}


def _load(model: str):
    if model not in _MODELS:
        from sentence_transformers import SentenceTransformer

        from tunerail.models import resolve_model

        _MODELS[model] = SentenceTransformer(resolve_model(model), device="cpu")
    return _MODELS[model]


def _key(model: str, text: str) -> bytes:
    return hashlib.sha256(f"{model}\x00{text}".encode("utf-8")).digest()[:16]


def embed_texts(texts: Sequence[str], model: str = "bundled:minilm", cache_dir: Path | None = None,
                batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
    """Return an (n, d) float32 array of L2-normalised embeddings, rows aligned with ``texts``.

    Each distinct text is encoded once; results are cached on disk by SHA-256 of (model, text).
    """
    from tunerail.models import cache_root

    cache_dir = Path(cache_dir) if cache_dir else cache_root() / "embeddings"
    keys = [_key(model, t) for t in texts]
    cache = _EmbeddingCache(cache_dir / (hashlib.sha256(model.encode()).hexdigest()[:12] + ".npz"))
    missing: dict[bytes, str] = {}
    for k, t in zip(keys, texts):
        if k not in cache and k not in missing:
            missing[k] = t
    if missing:
        encoder = _load(model)
        vectors = encoder.encode(list(missing.values()), batch_size=batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=show_progress)
        cache.update(zip(missing.keys(), vectors.astype(np.float32)))
        cache.save()
    if not keys:
        return np.zeros((0, 384), dtype=np.float32)
    return np.stack([cache[k] for k in keys]).astype(np.float32)


class _EmbeddingCache:
    """A dict of 16-byte key -> vector persisted as one .npz (atomic write)."""

    def __init__(self, path: Path):
        self.path = path
        self._data: dict[bytes, np.ndarray] = {}
        if path.exists():
            try:
                with np.load(path) as npz:
                    for k, v in zip(npz["keys"], npz["vectors"]):
                        self._data[k.tobytes()] = v
            except (OSError, ValueError, KeyError):
                self._data = {}  # a broken cache is rebuilt, never trusted

    def __contains__(self, key: bytes) -> bool:
        return key in self._data

    def __getitem__(self, key: bytes) -> np.ndarray:
        return self._data[key]

    def update(self, items) -> None:
        self._data.update(items)

    def save(self) -> None:
        import io

        from tunerail.store.store import write_atomic

        keys = np.array([np.frombuffer(k, dtype=np.uint8) for k in self._data], dtype=np.uint8).reshape(-1, 16)
        vectors = np.stack(list(self._data.values())) if self._data else np.zeros((0, 384), np.float32)
        buf = io.BytesIO()
        np.savez(buf, keys=keys, vectors=vectors)
        write_atomic(self.path, buf.getvalue())
