"""Find what a run folder holds: config, base model, adapter, train and test splits.

Two layouts are understood, both written by tunerail itself:

- ``tunerail run`` output: ``train/train.json``, ``train/adapter/``, ``split/train.jsonl``,
  ``split/test.jsonl``;
- ``tunerail train --out DIR``: ``DIR/train.json``, ``DIR/adapter/``; the training file is the one
  recorded in ``train.json`` (``data.lineage.files``), the test file its sibling ``test.jsonl``.

The config is ``--config`` when given, else the first ``tunerail.yaml`` found in the run folder
or up to two folders above it (``tunerail run`` writes ``runs/<project>`` beside the config).

An export folder (``tunerail export``: ``RUN/export/merged``, ``RUN/export/gguf``, or ``RUN/export``
itself, which serves ``merged``) resolves to the run it was exported from (``export.json`` records
it): the run's config, labels and traffic log, with the exported weights as the model and no adapter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunerail.errors import Problem, TunerailError
from tunerail.io import read_json
from tunerail.store import Store
from tunerail.store.checks import adapter_problems, check_adapter


@dataclass
class RunInfo:
    """Everything serve and monitor need from a run folder."""

    run_dir: Path
    config: Any  # TunerailConfig
    base_model: str
    adapter_dir: Path | None
    train_path: Path | None
    test_path: Path | None
    train_json: dict[str, Any] = field(default_factory=dict)
    adapter_check: dict[str, Any] = field(default_factory=dict)  # tunerail.store.checks.check_adapter
    export_kind: str | None = None  # "merged" or "gguf" when the folder given was an export (base_model is then that folder)

    @property
    def model_id(self) -> str:
        """The id clients send as ``model``: the project name (OpenAI ids are free-form strings)."""
        return self.config.project.name

    @property
    def traffic_path(self) -> Path:
        return self.run_dir / "traffic" / "traffic.jsonl"

    def load_split(self, which: str) -> list[Any]:
        """Records of the train or test split (empty list when the run has none)."""
        from tunerail.data.loaders import load_records

        path = self.train_path if which == "train" else self.test_path
        if path is None or not path.exists():
            return []
        records, _, _ = load_records(path, self.config.data.format, self.config.data.columns)
        return records

    def labels(self) -> list[str]:
        """The label set of a classification run: the training split's distinct completions."""
        if self.config.task != "classification":
            return []
        return sorted({r.completion.strip() for r in self.load_split("train") if r.completion.strip()})


def _find_config(run_dir: Path) -> Path | None:
    for folder in (run_dir, run_dir.parent, run_dir.parent.parent):
        for name in ("tunerail.yaml", "tunerail.yml", "config.yaml"):
            if (folder / name).is_file():
                return folder / name
    return None


def load_run(run_dir: str | Path, config: Any = None, allow_changed_adapter: bool = False) -> RunInfo:
    """Resolve a run folder; raises ``TunerailError`` naming what is missing and how to get it.

    Parameters
    ----------
    run_dir : folder written by ``tunerail run`` or ``tunerail train``.
    config : a ``TunerailConfig``, a path to the YAML, or None to look for ``tunerail.yaml``.
    allow_changed_adapter : use an adapter whose files differ from the checkpoint the run
        recorded in the store (default: refused with ``GuardrailError``); recorded in
        ``RunInfo.adapter_check``.
    """
    from tunerail.config import TunerailConfig, load_config

    run = Path(run_dir)
    if not run.is_dir():
        raise TunerailError(
            Problem("run folder not found", file=str(run), fix="pass the folder written by `tunerail run` or `tunerail train --out`")
        )
    if (run / "export.json").is_file() or (run.parent / "export.json").is_file():
        return _load_export(run, config)
    if not isinstance(config, TunerailConfig):
        path = Path(config) if config is not None else _find_config(run)
        if path is None:
            raise TunerailError(
                Problem(
                    "no tunerail.yaml in the run folder or the two folders above it",
                    file=str(run),
                    fix="pass --config tunerail.yaml (the config the run was trained with)",
                )
            )
        config = load_config(path)
    if (run / "train" / "train.json").is_file():
        train_json_path, split_dir = run / "train" / "train.json", run / "split"
        train_path: Path | None = split_dir / "train.jsonl"
        test_path: Path | None = split_dir / "test.jsonl"
    elif (run / "train.json").is_file():
        train_json_path = run / "train.json"
        train_path = test_path = None
    else:
        raise TunerailError(
            Problem(
                "no train.json: this folder holds no finished training run",
                file=str(run),
                fix="train first (`tunerail run` or `tunerail train --out DIR`)",
            )
        )
    trained = read_json(train_json_path, "train.json")
    if train_path is None:
        files = list((trained.get("data", {}).get("lineage", {}).get("files") or {}))
        train_path = Path(files[0]) if files else None
        if train_path is not None and not train_path.is_absolute():
            train_path = (Path(config.source).parent if config.source else Path.cwd()) / train_path
        test_path = train_path.with_name("test.jsonl") if train_path is not None else None
    adapter = train_json_path.parent / "adapter"
    adapter_dir = adapter if (adapter / "adapter_config.json").is_file() else None
    return RunInfo(
        run_dir=run,
        config=config,
        base_model=trained.get("base_model") or config.model.base,
        adapter_dir=adapter_dir,
        train_path=train_path,
        test_path=test_path,
        train_json=trained,
        adapter_check=check_adapter(adapter_dir, run_store(config), allow_changed_adapter),
    )


SERVABLE_EXPORTS = ("merged", "gguf")


def _load_export(folder: Path, config: Any) -> RunInfo:
    """An export folder as the run it came from, serving the exported weights (no adapter on top)."""
    from dataclasses import replace

    if (folder / "export.json").is_file():
        manifest, kind = folder / "export.json", "merged"
        folder = folder / kind
    else:
        manifest, kind = folder.parent / "export.json", folder.name
    if kind not in SERVABLE_EXPORTS or not folder.is_dir():
        raise TunerailError(
            Problem(
                f"{folder} is not a servable export (only {' and '.join(SERVABLE_EXPORTS)} are: an adapter is served from its run folder)",
                file=str(folder),
                fix="pass RUN/export/merged, RUN/export/gguf, or the run folder",
            )
        )
    recorded = read_json(manifest, "export.json")
    source = recorded.get("run_dir")
    if not source or not Path(source).is_dir():
        raise TunerailError(
            Problem(
                f"the run this export came from is not here ({source or 'not recorded'}): its config, labels and traffic log live there",
                file=str(manifest),
                fix="serve the export beside its run folder, or export again with this version of tunerail",
            )
        )
    run = load_run(source, config if config is not None else recorded.get("config"), allow_changed_adapter=True)
    return replace(run, base_model=str(folder), adapter_dir=None, adapter_check={}, export_kind=kind)


def run_store(config: Any) -> Store:
    """The store the run's config names (``store.path``, relative to the config file)."""
    return Store(config.resolve(config.store.path) or config.store.path)


def run_problems(run_dir: str | Path, config: Any = None) -> tuple[str, list[Problem]]:
    """Every run-folder file that has a store copy, checked against it: the adapter and the split.

    Returns ``(what was checked, problems)``; the adapter is compared with the checkpoint that
    ``train.json`` records, the split folder with the split its ``split.json`` points to.
    """
    from tunerail.split.frozen import split_problems

    run = load_run(run_dir, config, allow_changed_adapter=True)
    store = run_store(run.config)
    problems: list[Problem] = []
    checked = []
    if run.adapter_dir is not None:
        checkpoint_id, problems = adapter_problems(run.adapter_dir, store)
        checked.append(f"adapter against checkpoint {checkpoint_id[:12]}" if checkpoint_id else "adapter (no checkpoint recorded)")
    split_dir = run.test_path.parent if run.test_path is not None else None
    if split_dir is not None and (split_dir / "split.json").is_file():
        problems += split_problems(split_dir, store)
        checked.append(f"split folder {split_dir}")
    return f"run {run.run_dir}: " + ", ".join(checked or ["nothing with a store copy"]), problems


def record_override(run: RunInfo, command: str, flag: str) -> Path:
    """Append a switched-off integrity check to ``RUN_DIR/overrides.jsonl`` (who relies on what was changed)."""
    import time

    path = run.run_dir / "overrides.jsonl"
    entry = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": command, "flag": flag, **run.adapter_check}
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return path
