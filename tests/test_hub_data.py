"""Hub dataset ids as data.path, offline: a local dataset repository folder and a populated datasets cache.

The cache is laid out as ``datasets`` lays it out after a real download
(``<cache>/owner___name/<subset>/0.0.0/<commit sha>/``), built here from a Hub-style repository folder of
real Banking77 rows, so ``load_dataset("acme/bank_intents")`` resolves from it with no network.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from train_tiny import tiny_model_dir

from tunerail.cli import main
from tunerail.config import TunerailConfig
from tunerail.data.hub import HubSource, is_hub_id, source_for
from tunerail.data.loaders import load_records
from tunerail.errors import DataError, GuardrailError
from tunerail.pipeline import run
from tunerail.split import split
from tunerail.store import Store

REPO_ID = "acme/bank_intents"
SHA_A = "a1" * 20
SHA_B = "b2" * 20
README = """---
configs:
- config_name: banking
  data_files:
  - split: train
    path: data/banking_train.jsonl
  - split: test
    path: data/banking_test.jsonl
- config_name: qa
  data_files:
  - split: train
    path: data/qa.jsonl
---
# bank intents (test fixture)
"""


def _banking(banking_example: Path, n: int, offset: int = 0) -> list[dict]:
    with open(banking_example, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[offset : offset + n]
    return [{"text": r["text"], "label": r["category"]} for r in rows]


def _write_repo(folder: Path, train: list[dict], test: list[dict]) -> Path:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(README, encoding="utf-8")
    for name, rows in [("banking_train", train), ("banking_test", test)]:
        (folder / "data" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / "data" / "qa.jsonl").write_text('{"prompt": "What is 2+2?", "completion": "4"}\n', encoding="utf-8")
    return folder


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty datasets cache, offline (what HF_HOME=tmp + HF_DATASETS_OFFLINE=1 gives a fresh machine)."""
    import datasets.config

    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(cache))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    return cache


def _cache_commit(cache: Path, repo: Path, sha: str, subset: str = "banking", age_s: float = 0.0) -> None:
    """Put ``repo`` in the cache as commit ``sha`` of REPO_ID, as a download of that commit leaves it."""
    from datasets import load_dataset_builder

    builder = load_dataset_builder(str(repo), name=subset, cache_dir=str(cache.parent / "build" / sha))
    builder.dataset_name = REPO_ID.split("/")[1]  # the cached arrow files are named after the Hub dataset
    out = cache / REPO_ID.replace("/", "___") / subset / "0.0.0" / sha
    builder.download_and_prepare(output_dir=str(out))
    if age_s:
        old = out.stat().st_mtime - age_s
        os.utime(out, (old, old))


def _config(tmp_path: Path, **data) -> TunerailConfig:
    cfg = TunerailConfig.model_validate(
        {
            "task": "classification",
            "data": {"format": "text_label", **data},
            "split": {"semantic": False},
            "store": {"path": str(tmp_path / "store")},
        }
    )
    return cfg


def test_hub_id_shape_and_a_missing_file_keeps_file_not_found(tmp_path):
    assert is_hub_id("tatsu-lab/alpaca") and is_hub_id("HuggingFaceH4/ultrachat_200k")
    assert not is_hub_id("data/train.jsonl") and not is_hub_id("a/b/c") and not is_hub_id("/abs/x")
    (tmp_path / "owner" / "name").mkdir(parents=True)
    assert not is_hub_id(tmp_path / "owner" / "name")  # an existing local path wins
    cfg = _config(tmp_path, path="data/train.jsonl").model_copy(update={"source": str(tmp_path / "tunerail.yaml")})
    source = source_for(cfg)
    assert source == tmp_path / "data" / "train.jsonl"
    with pytest.raises(DataError, match="file not found"):
        load_records(source)


def test_repo_folder_honours_subset_and_split(tmp_path, hub_cache, banking_example):
    repo = _write_repo(tmp_path / "bank_intents", _banking(banking_example, 40), _banking(banking_example, 7, offset=40))
    cfg = _config(tmp_path, path=str(repo), subset="banking", split="test")
    source = source_for(cfg)
    assert isinstance(source, HubSource) and (source.subset, source.split) == ("banking", "test")
    records, rejected, fmt = load_records(source, "text_label")
    assert (len(records), rejected, fmt) == (7, [], "text_label")
    first = _banking(banking_example, 1, offset=40)[0]
    assert (records[0].prompt, records[0].label) == (first["text"], first["label"])
    assert records[0].ref.file == str(source)
    default_split, _, _ = load_records(HubSource(str(repo), "banking"), "text_label")
    assert len(default_split) == 40  # no split named: train
    qa, _, qa_fmt = load_records(HubSource(str(repo), "qa"))
    assert qa_fmt == "prompt_completion" and qa[0].completion == "4"


def test_cached_hub_id_loads_offline_and_the_snapshot_records_its_commit(tmp_path, hub_cache, banking_example, capsys):
    repo = _write_repo(tmp_path / "repo", _banking(banking_example, 300), _banking(banking_example, 20, offset=300))
    _cache_commit(hub_cache, repo, SHA_A)
    cfg = _config(tmp_path, path=REPO_ID, subset="banking", revision="main")
    result = split(source_for(cfg), cfg, out_dir=tmp_path / "split", force=True)
    expected = {"id": REPO_ID, "subset": "banking", "split": "train", "revision": "main", "commit": SHA_A}
    assert result.manifest["data"]["hub"] == expected
    assert result.manifest["data"]["rows"] == 300
    snapshot = Store(tmp_path / "store").get(result.manifest["store"]["dataset_id"])
    assert snapshot.meta["hub"] == expected
    assert not any("moved" in w for w in result.warnings)
    capsys.readouterr()
    assert main(["lineage", result.manifest["store"]["split_id"], "--store", str(tmp_path / "store")]) == 0
    assert f"hub {REPO_ID} (banking/train)  commit {SHA_A}" in capsys.readouterr().out


def test_a_moved_hub_dataset_is_named_on_the_next_run(tmp_path, hub_cache, banking_example):
    repo = _write_repo(tmp_path / "repo", _banking(banking_example, 300), _banking(banking_example, 20, offset=300))
    _cache_commit(hub_cache, repo, SHA_A)
    cfg = _config(tmp_path, path=REPO_ID, subset="banking")
    split(source_for(cfg), cfg, out_dir=tmp_path / "first", force=True)
    moved = _write_repo(tmp_path / "repo_b", _banking(banking_example, 300, offset=320), _banking(banking_example, 20))
    _cache_commit(hub_cache, moved, SHA_B)
    os.utime(hub_cache / "acme___bank_intents" / "banking" / "0.0.0" / SHA_A, (1, 1))  # B is the newer download
    second = split(source_for(cfg), cfg, out_dir=tmp_path / "second", force=True)
    assert second.manifest["data"]["hub"]["commit"] == SHA_B
    named = [w for w in second.warnings if "moved" in w]
    assert len(named) == 1 and f"moved from commit {SHA_A} to {SHA_B}" in named[0]


def test_a_requested_commit_that_is_not_the_cached_one_is_refused(tmp_path, hub_cache, banking_example):
    repo = _write_repo(tmp_path / "repo", _banking(banking_example, 30), _banking(banking_example, 5, offset=30))
    _cache_commit(hub_cache, repo, SHA_A)
    with pytest.raises(DataError) as err:
        load_records(HubSource(REPO_ID, "banking", revision=SHA_B))
    text = str(err.value)
    assert SHA_A in text and SHA_B in text and "data.revision" in text
    with pytest.raises(DataError, match="no split 'validation'.*train, test"):
        load_records(HubSource(REPO_ID, "banking", split="validation"))


def test_cli_doctor_on_an_uncached_hub_id_exits_2_naming_it(tmp_path, hub_cache, capsys):
    config = tmp_path / "tunerail.yaml"
    config.write_text(
        "task: classification\ncriteria: {threshold: 0.5}\ndata:\n  path: nobody/not_cached\n  revision: v1.2\n", encoding="utf-8"
    )
    assert main(["doctor", "--config", str(config), "--out", str(tmp_path / "doctor")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "nobody/not_cached" in err and "v1.2" in err and "HF_DATASETS_OFFLINE=0" in err


class _Stop(Exception):
    """Raised by the stubbed train step: the run got past doctor, split and leakage."""


def test_run_names_a_moved_hub_dataset_and_audits_it_again(tmp_path, hub_cache, banking_example, monkeypatch):
    import tunerail.train

    monkeypatch.setattr(tunerail.train, "train", lambda *a, **k: (_ for _ in ()).throw(_Stop()))
    _cache_commit(hub_cache, _write_repo(tmp_path / "a", _banking(banking_example, 240), []), SHA_A)
    cfg = TunerailConfig.model_validate(
        {
            "task": "classification",
            "data": {"path": REPO_ID, "subset": "banking", "format": "text_label"},
            "model": {"base": str(tiny_model_dir()), "max_seq_length": 96},
            "criteria": {"metric": "accuracy", "threshold": 0.5, "margin": 0.2},
            "doctor": {"semantic": False},
            "split": {"train": 0.6, "validation": 0.2, "test": 0.2, "semantic": False},
            "pipeline": {"stop_on": "never"},
            "store": {"path": str(tmp_path / "store")},
        }
    )
    events: list[tuple[str, str]] = []
    with pytest.raises(_Stop):
        run(cfg, out_dir=tmp_path / "run", on_event=lambda step, message: events.append((step, message)))
    assert events[0] == ("data", f"{REPO_ID} at commit {SHA_A}")
    split_json = json.loads((tmp_path / "run" / "split" / "split.json").read_text(encoding="utf-8"))
    assert split_json["data"]["hub"]["commit"] == SHA_A

    _cache_commit(hub_cache, _write_repo(tmp_path / "b", _banking(banking_example, 240, offset=240), []), SHA_B)
    os.utime(hub_cache / "acme___bank_intents" / "banking" / "0.0.0" / SHA_A, (1, 1))
    events.clear()
    with pytest.raises(GuardrailError, match="already holds a frozen test set"):  # new rows: a new test set, refused
        run(cfg, out_dir=tmp_path / "run", on_event=lambda step, message: events.append((step, message)))
    assert events[0][0] == "data" and f"moved from commit {SHA_A} to {SHA_B} since the last run" in events[0][1]
    assert ("doctor", "running") in events  # the moved data is audited again, not skipped as unchanged
