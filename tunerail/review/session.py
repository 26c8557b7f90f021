"""A review session over one run folder: the material, the SQLite store, the links, the results.

Layout (``RUN_DIR`` is the eval output folder, or a `tunerail run` folder holding ``eval/``)::

    RUN_DIR/review_items.jsonl      the eval step's review material (every test row, both outputs)
    RUN_DIR/review/review.sqlite    assignments and votes (WAL; one transaction per vote)
    RUN_DIR/review/links.json       annotator link tokens (mode 0600; only hashes are in the database)
    RUN_DIR/review/results.json     written by `tunerail review results`

``review_results`` also folds the results into ``report.json`` / ``report.html`` beside the
material (``tunerail.eval.human``: eval owns re-deciding its verdict): the ``criteria.human``
findings (EVL06x) replace the earlier ones and the verdict is re-decided from the full finding
list, so the eval report shows the review and its effect.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from tunerail.config import ReviewConfig, TunerailConfig
from tunerail.errors import Problem, TunerailError
from tunerail.eval.human import fold_human_review
from tunerail.eval.verdict import Verdict, check_human
from tunerail.io import hash_file, write_atomic, write_private
from tunerail.review.material import ITEMS_FILE
from tunerail.review.store import ReviewStore, make_units, parse_pairs


@dataclass
class ReviewSession:
    """Everything the app needs: items (by position in the material), the store and the rubric."""

    run_dir: Path
    items: list[dict[str, Any]]
    store: ReviewStore
    review: ReviewConfig
    tokens: dict[str, str]

    @property
    def folder(self) -> Path:
        return self.store.path.parent

    def links(self, base_url: str) -> dict[str, str]:
        """name -> link; ``@admin`` opens the results (never give it to a reviewer: it names the systems)."""
        return {name: f"{base_url.rstrip('/')}/?token={token}" for name, token in self.tokens.items()}


def material_path(run_dir: str | Path) -> Path:
    """``RUN_DIR/review_items.jsonl`` or ``RUN_DIR/eval/review_items.jsonl``."""
    run_dir = Path(run_dir)
    for candidate in (run_dir / ITEMS_FILE, run_dir / "eval" / ITEMS_FILE):
        if candidate.exists():
            return candidate
    raise TunerailError(
        Problem(
            f"no review material ({ITEMS_FILE}) in this folder",
            file=str(run_dir),
            fix="pass the folder written by `tunerail eval --out` (or a `tunerail run` folder)",
        )
    )


def load_items(path: Path) -> list[dict[str, Any]]:
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec.get("outputs"), dict):
                raise ValueError("no outputs object")
        except ValueError as exc:
            raise TunerailError(
                Problem(f"not a review item ({exc})", file=str(path), line=n, fix="re-run `tunerail eval` to rewrite the material")
            ) from None
        items.append(rec)
    return items


def open_session(
    run_dir: str | Path,
    *,
    config: TunerailConfig | None = None,
    annotators: Sequence[str] | None = None,
    pairs: str | None = None,
    new_links: bool = False,
) -> ReviewSession:
    """Create the session on first use, or reopen it (same material, same annotators) to resume.

    Raises TunerailError when the material changed since the session was created (the votes
    would refer to other outputs) or when a different annotator list or pair is asked for.
    """
    review = (config or TunerailConfig()).review
    material = material_path(run_dir)
    items = load_items(material)
    folder = material.parent / "review"
    store = ReviewStore(folder / "review.sqlite")
    links_file = folder / "links.json"
    digest = hash_file(material)
    if store.exists():
        meta = store.meta()
        where = str(store.path)
        if meta["material_hash"] != digest:
            raise TunerailError(
                Problem(
                    "the review material changed since this review started",
                    file=where,
                    fix="move the review/ folder away to start a new review of the new outputs",
                )
            )
        if annotators and list(annotators) != meta["annotators"]:
            raise TunerailError(
                Problem(
                    f"this review was started with annotators {', '.join(meta['annotators'])}",
                    file=where,
                    field="--annotators",
                    fix="pass the same list (or none), or move review/ away for a new review",
                )
            )
        if pairs and [tuple(p) for p in parse_pairs(pairs)] != meta["pairs"]:
            raise TunerailError(
                Problem("this review was started with other pairs", file=where, field="--pairs", fix="pass the same --pairs (or none)")
            )
        tokens = store.new_tokens() if new_links or not links_file.exists() else json.loads(links_file.read_text())
    else:
        names = list(annotators or review.annotators or ["reviewer"])
        bad = [n for n in names if not n or n.startswith("@") or len(n) > 64]
        if bad or len(set(names)) != len(names):
            raise TunerailError(
                Problem(f"bad annotator names {names}", field="--annotators", fix="distinct names, comma-separated, not starting with @")
            )
        pair_list = parse_pairs(pairs or ",".join(review.pairs))
        missing = sorted({s for p in pair_list for s in p} - {s for it in items for s in it["outputs"]})
        if missing:
            raise TunerailError(
                Problem(
                    f"no outputs for system(s) {', '.join(missing)}",
                    file=str(material),
                    field="--pairs",
                    fix="systems in the material: " + ", ".join(sorted({s for it in items for s in it["outputs"]})),
                )
            )
        units = make_units(items, pair_list, review.seed)
        tokens = store.create(
            material_hash=digest, units=units, annotators=names, overlap=review.overlap, seed=review.seed, pairs=pair_list
        )
    write_private(links_file, json.dumps(tokens, indent=2))
    os.chmod(links_file, 0o600)
    return ReviewSession(material.parent, items, store, review, tokens)


def compute_results(session: ReviewSession, *, resamples: int = 1000) -> dict[str, Any]:
    """The results of the session as it stands (any time, also mid-review)."""
    from tunerail.review.results import summarize

    meta = session.store.meta()
    progress = {}
    for name in meta["annotators"]:
        done, total, _ = session.store.progress(name)
        progress[name] = {"done": done, "total": total}
    with session.store.connect() as c:
        units_total = c.execute("SELECT COUNT(*) FROM units").fetchone()[0]
    out = summarize(
        session.store.votes(), session.review.rubric, units_total=units_total, items=session.items, progress=progress, resamples=resamples
    )
    out["material_hash"] = meta["material_hash"]
    out["overlap"], out["seed"] = meta["overlap"], meta["seed"]
    return out


def review_results(run_dir: str | Path, *, config: TunerailConfig | None = None, update_report: bool = True) -> dict[str, Any]:
    """Compute the results, write ``review/results.json`` and fold them into the eval report.

    Returns ``{"results", "verdict", "findings", "path"}`` (verdict None without a report.json).
    """
    config = config or TunerailConfig()
    session = open_session(run_dir, config=config)
    results = compute_results(session)
    path = write_atomic(session.folder / "results.json", json.dumps(results, indent=2, ensure_ascii=False, default=str))
    verdict: Verdict | None = None
    findings: list[Any] = []
    report = session.run_dir / "report.json"
    if update_report and report.exists():
        verdict, findings = fold_human_review(session.run_dir, results, config)
    else:
        findings = check_human(config.criteria, results)
    return {"results": results, "verdict": verdict, "findings": findings, "path": str(path)}
