"""The eval's on-disk cache: model outputs keyed by (model + adapter hash, data hash, prompt hash, settings).

Each entry carries its key, inputs and a SHA-256 over all three with the value, and is checked on
read (an edited or foreign entry is recomputed and named in the report), so a re-run of `tunerail
eval` after a report tweak costs nothing and a forged entry cannot change a verdict.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from tunerail.io import write_private

log = logging.getLogger(__name__)


def cache_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def data_hash(items: Sequence[Any]) -> str:
    return hashlib.sha256(json.dumps(list(items), sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


# Cache lookups that were served ("hits") and computed ("misses") since import: a test checks that a
# second evaluation computed nothing by these counts, not by wall time. "rejected": entries that
# failed their check on read and were recomputed.
CACHE_STATS: dict[str, int] = {"hits": 0, "misses": 0, "rejected": 0}
# One record per lookup since import ({"key", "path", "event": hit|miss|rejected, "reason"}):
# ``evaluate`` slices its own lookups off the end and names them in the report.
CACHE_LOG: list[dict[str, Any]] = []
CACHE_FORMAT = 2


def _entry_digest(key: str, inputs: dict[str, Any], value: Any) -> str:
    """SHA-256 of an entry's key, inputs and value (canonical JSON): an edited value no longer matches."""
    payload = json.dumps({"key": key, "inputs": inputs, "value": value}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def _read_entry(path: Path, key: str, inputs: dict[str, Any]) -> tuple[Any, str | None]:
    """``(value, None)`` for an intact entry of this key and these inputs, else ``(None, why not)``."""
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"unreadable ({type(exc).__name__})"
    if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT:
        return None, "no integrity record (written by an older version or by hand)"
    if entry.get("key") != key or entry.get("inputs") != inputs:
        return None, "it records other inputs than this lookup's"
    if entry.get("sha256") != _entry_digest(key, inputs, entry.get("value")):
        return None, "its value does not match its SHA-256 (edited after it was written)"
    return entry["value"], None


def cached(cache_dir: Path | None, key: str, compute: Callable[[], Any], inputs: dict[str, Any] | None = None) -> tuple[Any, bool]:
    """Return ``(value, hit)``; values are JSON (lists of strings or numbers).

    Each entry carries its key, its inputs (hashes of model, data, settings) and the SHA-256 of
    all three with the value; it is checked on read, and an entry that fails is recomputed,
    counted in ``CACHE_STATS["rejected"]`` and logged with the reason (``CACHE_LOG``).
    """
    if cache_dir is None or os.environ.get("TUNERAIL_NO_EVAL_CACHE"):
        CACHE_STATS["misses"] += 1
        return compute(), False
    inputs = _plain(inputs or {})
    path = Path(cache_dir) / f"{key}.json"
    if path.exists():
        value, problem = _read_entry(path, key, inputs)
        if problem is None:
            CACHE_STATS["hits"] += 1
            CACHE_LOG.append({"key": key, "path": str(path), "event": "hit", "reason": None})
            return value, True
        CACHE_STATS["rejected"] += 1
        CACHE_LOG.append({"key": key, "path": str(path), "event": "rejected", "reason": problem})
        log.warning("eval cache entry %s rejected: %s; recomputed", path, problem)
    else:
        CACHE_LOG.append({"key": key, "path": str(path), "event": "miss", "reason": None})
    CACHE_STATS["misses"] += 1
    value = compute()
    plain = _plain(value)
    entry = {"format": CACHE_FORMAT, "key": key, "inputs": inputs, "sha256": _entry_digest(key, inputs, plain), "value": plain}
    write_private(path, json.dumps(entry, ensure_ascii=False))
    return value, False


def cache_summary(lookups: Sequence[dict[str, Any]]) -> str:
    """One line for the report: how many outputs the verdict took from the cache, and which were refused."""
    hits = [e for e in lookups if e["event"] == "hit"]
    rejected = [e for e in lookups if e["event"] == "rejected"]
    if not lookups:
        return "not used"
    text = f"{len(hits)} of {len(lookups)} model outputs served from the cache" + (f" ({Path(hits[0]['path']).parent})" if hits else "")
    if rejected:
        text += "; recomputed after a failed integrity check: " + "; ".join(f"{Path(e['path']).name}: {e['reason']}" for e in rejected)
    return text


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value
