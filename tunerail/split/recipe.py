"""`tunerail split`: a grouped, stratified, seeded train/validation/test split with a frozen test set.

Recipe (top to bottom):

1. load the rows (any format the loaders read) and hash the source files;
2. find what must stay together (:mod:`tunerail.split.groups`): exact, 13-gram, MinHash and,
   optionally, embedding-paraphrase clusters of the prompts, plus ``data.group_column`` groups;
3. assign whole groups to the splits, stratified by label (:mod:`tunerail.split.assign`);
4. refuse evaluation sets that are too small to measure the main metric (:mod:`tunerail.split.guards`);
5. write ``train/validation/test.jsonl`` + ``split.json``, and store the source snapshot and the split
   in the content-addressed store; the test file's SHA-256 is the frozen reference
   (:func:`tunerail.split.frozen.verify_frozen_split`).

Pipeline position: split runs on the raw (doctor-cleaned) rows BEFORE anything is fitted on the data:
no normaliser, tokenizer-statistic, dedup model, class re-weighting or augmentation may see the
validation or test rows, or their scores are optimistic. Fit those on ``train.jsonl`` only.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence


from tunerail.config import TunerailConfig, load_config
from tunerail.data.hub import HubSource, as_source, moved_since, pin
from tunerail.data.records import Record
from tunerail.errors import GuardrailError, Problem, TunerailError
from tunerail.split.assign import assign_groups
from tunerail.split.frozen import criteria_frozen_in_store
from tunerail.split.groups import Groups, find_groups
from tunerail.split.guards import size_problems
from tunerail.stats import rows_needed, wilson_half_width
from tunerail.io import check_out_dir, hash_file, write_atomic, write_private
from tunerail.store import Store

SPLITS = ("train", "validation", "test")
UNREADABLE = "unreadable"  # _frozen_elsewhere: a split.json that cannot be parsed
FROZEN = "test"


@dataclass
class SplitResult:
    """What ``split`` did: where the files are, their sizes and hashes, and what it kept together."""

    out_dir: Path
    paths: dict[str, Path]
    sizes: dict[str, int]
    per_class: dict[str, dict[str, int]]
    groups: dict[str, Any]
    hashes: dict[str, str]
    indices: dict[str, list[int]]  # record positions (``Record.index``) in each split
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    forced: bool = False
    dataset_id: str | None = None
    split_id: str | None = None

    @property
    def split_json(self) -> Path:
        return self.out_dir / "split.json"


def _jsonl(records: Sequence[Record]) -> bytes:
    lines = []
    for r in records:
        row = r.to_json()
        if isinstance(r.fields.get("_tunerail"), dict):  # keep the provenance of an earlier step
            row["_tunerail"]["origin"] = r.fields["_tunerail"]
        lines.append(json.dumps(row, ensure_ascii=False, default=str, allow_nan=False))  # the loader refuses NaN rows
    return ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8")


def _load(data: Any, config: TunerailConfig) -> tuple[list[Record], int, str, dict[str, str]]:
    if isinstance(data, (str, Path, HubSource)):
        from tunerail.data.loaders import load_records

        path = data if isinstance(data, HubSource) else Path(data)
        records, rejections, fmt = load_records(path, config.data.format, config.data.columns, config.data.group_column)
        return records, len(rejections), fmt, {} if isinstance(path, HubSource) else {str(path): hash_file(path)}
    records = list(data)
    return records, 0, records[0].format if records else "auto", {}


def _refuse_single_class(records: Sequence[Record], config: TunerailConfig, file: str | None) -> None:
    """A classification split needs two labels at least: with one, every test answer is that label."""
    labels = {r.label for r in records if r.label is not None}
    if config.task == "classification" and len(labels) == 1:
        raise TunerailError(
            Problem(
                f"every row has the label {next(iter(labels))!r}: a classification split needs at least two classes",
                file=file,
                field="data.columns.label",
                fix="add rows of the other classes, or map the real label column in data.columns.label",
            )
        )


def _frozen_elsewhere(out: Path, new_sha: str) -> str | None:
    """The hash of a different test set already frozen in ``out`` (None: none, or the same one)."""
    manifest = out / "split.json"
    if not manifest.exists():
        return None
    try:
        old = json.loads(manifest.read_text(encoding="utf-8")).get("frozen", {}).get("sha256")
    except (ValueError, AttributeError):
        # A damaged manifest may hide a frozen test set: treat it as one that differs (refused unless --force).
        return UNREADABLE
    return old if old and old != new_sha else None


def _frozen_criteria(out: Path, test_sha: str) -> dict[str, Any] | None:
    """The criteria frozen with the SAME test set already in ``out`` (None: no split there, or another test set).

    ``{"criteria": {...}, "criteria_hash": ..., "test_sha256": ...}``; a split that was already re-run with
    changed criteria keeps the originally frozen ones (the change never becomes the new reference).
    """
    manifest = out / "split.json"
    if not manifest.exists():
        return None
    try:
        old = json.loads(manifest.read_text(encoding="utf-8"))
    except ValueError:
        return None
    if not isinstance(old, dict) or (old.get("frozen") or {}).get("sha256") != test_sha or "criteria_hash" not in old:
        return None
    return {"criteria": old.get("criteria", {}), "criteria_hash": old["criteria_hash"], "test_sha256": test_sha}


def _criteria_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(set(old) | set(new), key=str)
    return ", ".join(f"criteria.{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


def _use_semantic(config: TunerailConfig, n: int) -> bool:
    setting = config.split.semantic
    return n < config.split.semantic_max_rows if setting == "auto" else bool(setting)


def split(
    data: str | Path | HubSource | Sequence[Record],
    config: TunerailConfig | str | Path | None = None,
    *,
    out_dir: str | Path,
    force: bool = False,
    store: Store | str | Path | None = None,
    allow_criteria_change: bool = False,
    origin: HubSource | None = None,
) -> SplitResult:
    """Split ``data`` into train/validation/test so that no duplicate cluster or group crosses splits.

    Parameters
    ----------
    data : path to a data file (any format ``load_records`` reads), a Hub dataset or a list of records.
    config : TunerailConfig, path to tunerail.yaml, or None for defaults. Reads ``split``,
        ``data`` (format, columns, group_column), ``criteria`` (margin, metric) and ``doctor``
        (near-duplicate threshold).
    out_dir : folder for ``train.jsonl``, ``validation.jsonl``, ``test.jsonl`` and ``split.json``.
    force : accept validation/test sets that fail the size guard; the override and its reason are
        recorded in ``split.json`` (``forced`` and ``warnings``).
    store : the content-addressed store (default ``config.store.path``) that receives the source
        snapshot (``dataset``) and the split (``split``, parent: the snapshot).
    allow_criteria_change : accept criteria that differ from those frozen with the same test set in
        ``out_dir``; the originally frozen criteria stay the reference, the change is recorded in
        ``split.json`` (``criteria_changed``) and the verdict on this test set cannot be READY.
    origin : the Hub dataset ``data`` was read from (pinned to its commit), when ``data`` is a
        cleaned copy of it (``tunerail run``); a Hub ``data`` is its own origin.

    Notes
    -----
    Guarantees: rows of one group (duplicate/paraphrase cluster or ``group_column`` value) are in
    exactly one split; the same data, config and seed give byte-identical files. Splitting comes
    before any preprocessing, cleaning fit or augmentation (see the module docstring).

    Raises
    ------
    GuardrailError
        When validation or test is below 10 % of the rows, or the test set is too small for
        ``criteria.margin`` (the message gives the CI half-width and the rows needed), unless ``force``.
    """
    if not isinstance(config, TunerailConfig):
        config = load_config(config)
    out = check_out_dir(out_dir)
    if isinstance(data, (str, Path, HubSource)) and isinstance(source := as_source(data), HubSource):
        data = origin = pin(source)  # the snapshot records the commit these rows come from
    plan = _plan(data, config)  # 1-3: load, group, assign
    problems, warnings = _guard_sizes(plan, config, force)  # 4

    # 5. write, hash, store; never silently replace a different frozen test set
    blobs = {f"{name}.jsonl": _jsonl(rows) for name, rows in plan.parts.items()}
    hashes = {name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()}
    replaced = _check_replacing(out, hashes[f"{FROZEN}.jsonl"], force)
    if replaced:
        warnings.append(f"--force: replaced the frozen test set {replaced[:12]} in {out}")
    if not isinstance(store, Store):
        store = Store(store if store is not None else (config.resolve(config.store.path) or config.store.path))
    criteria_changed, diff = _criteria_change(config, out, store, hashes[f"{FROZEN}.jsonl"], allow_criteria_change)
    if criteria_changed:
        warnings.append(f"--allow-criteria-change: criteria changed after the test set was frozen ({diff})")
    paths = {name: write_private(out / f"{name}.jsonl", blobs[f"{name}.jsonl"]) for name in SPLITS}
    manifest = _manifest(config, plan, hashes, criteria_changed, bool(force and (problems or replaced)), warnings)
    meta: dict[str, Any] = {"format": plan.fmt, "rejected_rows": plan.rejected}
    if origin is not None:  # a Hub dataset: id, subset, split, revision and the commit read, not a file hash
        manifest["data"]["hub"] = meta["hub"] = origin.manifest()
        warnings.extend(m for m in [moved_since(store, origin)] if m)
    snapshot = store.add_dataset(plan.records, sources=list(plan.sources), transform="import", meta=meta)
    manifest["store"] = {"root": str(store.root), "dataset_id": snapshot.id}
    # The artifact records its own creation time; without the volatile one the same split gets the same id.
    stored = store.add("split", blobs, parents=[snapshot.id], transform="split", meta={k: v for k, v in manifest.items() if k != "created"})
    manifest["store"]["split_id"] = stored.id
    write_atomic(out / "split.json", json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    indices = {name: [r.index for r in rows] for name, rows in plan.parts.items()}
    summary = plan.groups.summary()
    return SplitResult(
        out, paths, plan.sizes, plan.per_class, summary, hashes, indices, manifest, warnings, manifest["forced"], snapshot.id, stored.id
    )


@dataclass
class _Plan:
    """Steps 1-3: the rows read, the groups that must stay together, and which split each row goes to."""

    records: list[Record]
    rejected: int
    fmt: str
    sources: dict[str, str]
    semantic: bool
    groups: Groups
    stratified: bool
    parts: dict[str, list[Record]]

    @property
    def sizes(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.parts.items()}

    @property
    def per_class(self) -> dict[str, dict[str, int]]:
        if not self.stratified:
            return {name: {} for name in self.parts}
        return {name: dict(sorted(Counter(str(r.label) for r in rows).items())) for name, rows in self.parts.items()}


def _plan(data: Any, config: TunerailConfig) -> _Plan:
    """1. load the rows, 2. find what must stay together, 3. whole groups into splits, stratified when there are labels."""
    records, rejected, fmt, sources = _load(data, config)
    if len(records) < len(SPLITS):
        raise TunerailError(
            Problem(
                f"only {len(records)} usable rows: nothing to split",
                file=next(iter(sources), None),
                fix="check the data file and data.format / data.columns",
            )
        )
    _refuse_single_class(records, config, next(iter(sources), None))
    cfg = config.split
    semantic = _use_semantic(config, len(records))
    groups: Groups = find_groups(
        records,
        near_threshold=config.doctor.near_duplicate_threshold,
        semantic=semantic,
        semantic_threshold=cfg.semantic_threshold,
        embedding_model=config.model.embedding_model,
        paraphrase_threshold=cfg.paraphrase_threshold,
    )
    labels = [r.label for r in records]
    stratified = cfg.stratify and all(label is not None for label in labels)
    shares = [cfg.train, cfg.validation, cfg.test]
    assignment = assign_groups(groups.labels, [str(label) for label in labels] if stratified else None, shares, cfg.seed)
    parts = {name: [r for r, s in zip(records, assignment) if s == k] for k, name in enumerate(SPLITS)}
    return _Plan(records, rejected, fmt, sources, semantic, groups, stratified, parts)


def _guard_sizes(plan: _Plan, config: TunerailConfig, force: bool) -> tuple[list[Problem], list[str]]:
    """4. validation and test big enough for the criteria (refused unless ``force``); the warnings so far."""
    cfg, n = config.split, len(plan.records)
    shares = [cfg.train, cfg.validation, cfg.test]
    warnings: list[str] = []
    problems = size_problems(
        plan.sizes, n, config.criteria.margin, config.criteria.metric, config.criteria.threshold, shares=dict(zip(SPLITS, shares))
    )
    if problems and not force:
        raise GuardrailError(problems)
    for problem in problems:
        warnings.append(f"--force: {problem.message}")
    if plan.rejected:
        warnings.append(f"{plan.rejected} rows could not be read and are in no split (run `tunerail doctor` to see why)")
    target_test = cfg.test * n
    if plan.groups.largest > target_test / 2:
        warnings.append(
            f"the largest group has {plan.groups.largest} rows (test target {target_test:.0f}): "
            "the shares may be off; check data.group_column or split.semantic_threshold"
        )
    return problems, warnings


def _check_replacing(out: Path, test_sha: str, force: bool) -> str | None:
    """The frozen test set this split would replace in ``out`` (refused unless ``force``), or None."""
    replaced = _frozen_elsewhere(out, test_sha)
    if replaced == UNREADABLE and not force:
        raise GuardrailError(
            Problem(
                "the split.json already here cannot be read (damaged?) and may record a frozen test set",
                file=str(out / "split.json"),
                fix="restore it (`tunerail verify`, Store.export of the split), write the new "
                "split to another --out folder, or pass --force to replace it (recorded)",
            )
        )
    if replaced and not force:
        raise GuardrailError(
            Problem(
                f"{out} already holds a frozen test set (SHA-256 {replaced[:12]}) and this split would replace it with "
                f"a different one ({test_sha[:12]}): scores on the old test set would no longer be comparable",
                file=str(out / "split.json"),
                fix="write the new split to another --out folder, or pass --force to replace it (recorded)",
            )
        )
    return replaced


def _criteria_change(config: TunerailConfig, out: Path, store: Store, test_sha: str, allow: bool) -> tuple[dict[str, Any] | None, str]:
    """The criteria change since this test set was frozen (refused unless ``allow``) and what differs; (None, "") if unchanged."""
    criteria_now = config.criteria.model_dump(mode="json")
    # the store's record wins over the split.json here (a copied or edited split.json must not unfreeze criteria)
    frozen_criteria = criteria_frozen_in_store(store, test_sha) or _frozen_criteria(out, test_sha)
    if not frozen_criteria or frozen_criteria["criteria_hash"] == config.criteria_hash():
        return None, ""
    diff = _criteria_diff(frozen_criteria["criteria"], criteria_now) or "criteria differ"
    if not allow:
        raise GuardrailError(
            Problem(
                f"the criteria changed after the test set was frozen ({diff}); frozen test set SHA-256 "
                f"{frozen_criteria['test_sha256'][:12]}, frozen criteria hash {frozen_criteria['criteria_hash'][:12]}: "
                "moving the goal after seeing results makes the verdict meaningless",
                file=str(out / "split.json"),
                fix="restore the frozen criteria, or pass --allow-criteria-change (recorded: the verdict on this "
                "test set can then not be READY), or split into a new --out folder with fresh test data",
            )
        )
    change = {
        "from": frozen_criteria["criteria"],
        "to": criteria_now,
        "to_hash": config.criteria_hash(),
        "from_hash": frozen_criteria["criteria_hash"],
        "test_sha256": frozen_criteria["test_sha256"],
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return change, diff


def _manifest(
    config: TunerailConfig, plan: _Plan, hashes: dict[str, str], criteria_changed: dict[str, Any] | None, forced: bool, warnings: list[str]
) -> dict[str, Any]:
    """split.json: sources, sizes, groups, hashes, the frozen test file and the criteria frozen with it."""
    cfg, n, sizes = config.split, len(plan.records), plan.sizes
    p = config.criteria.threshold if config.criteria.threshold and 0 < config.criteria.threshold < 1 else 0.5
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": {
            "sources": plan.sources,
            "rows": n,
            "rejected_rows": plan.rejected,
            "format": plan.fmt,
            "group_column": config.data.group_column,
        },
        "task": config.task,
        "seed": cfg.seed,
        "config": cfg.model_dump(mode="json"),
        "semantic_grouping": plan.semantic,
        "near_duplicate_threshold": config.doctor.near_duplicate_threshold,
        "stratified": plan.stratified,
        "sizes": sizes,
        "shares": {name: round(k / n, 4) for name, k in sizes.items()},
        "per_class": plan.per_class,
        "groups": plan.groups.summary(),
        "hashes": hashes,
        "frozen": {"file": f"{FROZEN}.jsonl", "sha256": hashes[f"{FROZEN}.jsonl"]},
        # The criteria frozen with this test set: a later change never replaces them (criteria_changed).
        "criteria": criteria_changed["from"] if criteria_changed else config.criteria.model_dump(mode="json"),
        "criteria_hash": criteria_changed["from_hash"] if criteria_changed else config.criteria_hash(),
        "criteria_changed": criteria_changed,
        "test_ci_half_width": round(wilson_half_width(sizes["test"], p), 4),
        "test_rows_needed": rows_needed(config.criteria.margin, p),
        "forced": forced,
        "warnings": warnings,
    }
