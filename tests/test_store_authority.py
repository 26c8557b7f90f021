"""The store decides what is frozen (issue 25 §1): each attack reproduced as a hostile user would.

split.json, cache files and adapters beside the data are pointers; a forged copy of any of them
with recomputed hashes must be refused, because the store's manifest still records the originals.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from tunerail.cli import main
from tunerail.config import TunerailConfig
from tunerail.errors import GuardrailError, TunerailError
from tunerail.eval.frozen import check_frozen
from tunerail.split import split, verify_frozen_split
from tunerail.store import Store


def _config(**criteria) -> TunerailConfig:
    return TunerailConfig.model_validate(
        {
            "task": "classification",
            "data": {"format": "text_label", "columns": {"text": "text", "label": "category"}},
            "criteria": {"margin": 0.2, "threshold": 0.5, **criteria},
            "split": {"semantic": False},
        }
    )


@pytest.fixture
def frozen_split(tmp_path, banking_example) -> tuple[Path, Store, TunerailConfig]:
    """A real split of 400 Banking77 rows, recorded in a store under tmp_path."""
    with open(banking_example, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[:400]
    data = tmp_path / "bank.csv"
    with open(data, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cfg = _config()
    store = Store(tmp_path / "store")
    split(data, cfg, out_dir=tmp_path / "split", store=store)
    return tmp_path / "split", store, cfg


def _rewrite(path: Path, edit) -> None:
    manifest = json.loads(path.read_text(encoding="utf-8"))
    edit(manifest)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")


def test_forged_criteria_in_a_copied_split_json_are_refused(tmp_path, frozen_split):
    """Loosen the criteria in a copied split.json and recompute criteria_hash: refused, both hashes named."""
    folder, store, cfg = frozen_split
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    loose = _config(threshold=0.1)
    _rewrite(
        copy / "split.json",
        lambda m: m.update(criteria=loose.criteria.model_dump(mode="json"), criteria_hash=loose.criteria_hash()),
    )
    with pytest.raises(GuardrailError) as info:
        check_frozen(copy / "test.jsonl", copy / "split.json", loose.criteria_hash())
    text = str(info.value)
    assert f"criteria_hash {json.dumps(loose.criteria_hash())} != {json.dumps(cfg.criteria_hash())}" in text
    assert "split.json is only a pointer" in text
    assert main(["verify", str(copy)]) == 1
    # the untouched folder is still frozen, and a criteria edit in the config is still EVL010's "edited"
    state = check_frozen(folder / "test.jsonl", folder / "split.json", cfg.criteria_hash())
    assert state["criteria_state"] == "frozen" and state["store"] == str(store.root)  # the report names the store
    assert check_frozen(folder / "test.jsonl", folder / "split.json", loose.criteria_hash())["criteria_state"] == "edited"


def test_split_refuses_looser_criteria_for_a_test_set_the_store_froze(tmp_path, frozen_split):
    """Re-splitting after forging split.json, or into a fresh folder, must not re-freeze looser criteria."""
    folder, store, cfg = frozen_split
    loose = _config(threshold=0.1)
    _rewrite(
        folder / "split.json",
        lambda m: m.update(criteria=loose.criteria.model_dump(mode="json"), criteria_hash=loose.criteria_hash()),
    )
    for out in (folder, tmp_path / "fresh"):
        with pytest.raises(GuardrailError, match="criteria changed after the test set was frozen"):
            split(tmp_path / "bank.csv", loose, out_dir=out, store=store)
    assert not (tmp_path / "fresh").exists()
    allowed = split(tmp_path / "bank.csv", loose, out_dir=tmp_path / "fresh", store=store, allow_criteria_change=True)
    assert allowed.manifest["criteria_hash"] == cfg.criteria_hash()  # the frozen criteria stay the reference


def test_an_edited_test_row_with_rewritten_hashes_is_refused_by_eval_and_verify(tmp_path, frozen_split, capsys):
    folder, store, cfg = frozen_split
    test = folder / "test.jsonl"
    original = hashlib.sha256(test.read_bytes()).hexdigest()
    lines = test.read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[0])
    row["text"] = row["text"].replace(row["text"].split()[0], "Hello", 1)  # one word
    lines[0] = json.dumps(row, ensure_ascii=False)
    test.write_text("\n".join(lines) + "\n", encoding="utf-8")
    forged = hashlib.sha256(test.read_bytes()).hexdigest()

    def forge(m: dict) -> None:
        m["hashes"]["test.jsonl"] = forged
        m["frozen"]["sha256"] = forged

    _rewrite(folder / "split.json", forge)
    with pytest.raises(GuardrailError) as info:
        verify_frozen_split(folder)
    assert original[:12] in str(info.value) or original in str(info.value)
    assert forged in str(info.value)
    with pytest.raises(GuardrailError):
        check_frozen(test, folder / "split.json", cfg.criteria_hash())
    capsys.readouterr()
    assert main(["verify", str(folder)]) == 1
    out = " ".join(capsys.readouterr().err.split())
    assert "the FROZEN test set changed after the split" in out and "hashes" in out


def test_split_json_naming_no_stored_split_is_an_error(frozen_split):
    folder, store, cfg = frozen_split
    _rewrite(folder / "split.json", lambda m: m.pop("store"))
    with pytest.raises(GuardrailError, match="names no stored split"):
        check_frozen(folder / "test.jsonl", folder / "split.json", cfg.criteria_hash())
    _rewrite(folder / "split.json", lambda m: m.update(store={"root": str(store.root), "split_id": "0" * 64}))
    with pytest.raises(GuardrailError, match=r"split 000000000000 named by split.json is not in the store"):
        verify_frozen_split(folder)


def test_eval_uses_the_split_json_beside_the_test_file_by_default(tmp_path, frozen_split, capsys):
    """Half the test rows deleted and no --split-json: refused (exit 2), not warning EVL011."""
    folder, store, cfg = frozen_split
    test = folder / "test.jsonl"
    lines = test.read_text(encoding="utf-8").splitlines()
    test.write_text("\n".join(lines[: len(lines) // 2]) + "\n", encoding="utf-8")
    with pytest.raises(GuardrailError, match="frozen test set changed"):
        check_frozen(test, None, cfg.criteria_hash())
    config = tmp_path / "tunerail.yaml"
    config.write_text(
        "task: classification\ndata: {format: text_label, columns: {text: text, label: category}}\n"
        "criteria: {margin: 0.2, threshold: 0.5}\nsplit: {semantic: false}\n"
    )
    capsys.readouterr()
    assert main(["eval", "-c", str(config), "--test", str(test), "--out", str(tmp_path / "eval")]) == 2
    assert "frozen test set changed" in " ".join(capsys.readouterr().err.split())


def test_a_test_file_without_split_json_stays_unverified(tmp_path):
    test = tmp_path / "test.jsonl"
    test.write_text('{"text": "a", "label": "b"}\n')
    assert check_frozen(test, None, "x")["criteria_state"] == "unverified"
    with pytest.raises(TunerailError, match="not found"):
        check_frozen(test, tmp_path / "split.json", "x")


# --- the eval cache feeds the verdict: entries are checked on read ---------------------------


def _tiny_eval(tmp_path, banking_example, cache: Path, out: str):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from eval_fixtures import cached_tiny_pair, write_jsonl

    import tunerail

    model, tiny_adapter = cached_tiny_pair()
    adapter = tmp_path / "run" / "adapter"  # a run's adapter, stored as its checkpoint, then one byte flipped
    if not adapter.exists():
        shutil.copytree(tiny_adapter, adapter)
        checkpoint = Store(tmp_path / "store").add_folder("checkpoint", adapter, transform="train")
        (adapter.parent / "train.json").write_text(json.dumps({"checkpoint_id": checkpoint.id}), encoding="utf-8")
        _flip_last_byte(adapter / "adapter_model.safetensors")
    with banking_example.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    test = write_jsonl(tmp_path / "test.jsonl", [rows[i] for i in range(0, len(rows), 125)][:12])
    cfg = TunerailConfig.model_validate(
        {
            "task": "classification",
            "data": {"format": "text_label", "columns": {"label": "category"}},
            "criteria": {"metric": "accuracy", "threshold": 0.7, "margin": 0.5},
            "eval": {"forgetting": False, "bootstrap": 100, "decoding": "constrained"},  # two generations per run
            "store": {"path": str(tmp_path / "store")},
        }
    )
    with pytest.raises(GuardrailError, match="adapter_model.safetensors differs from the store's copy"):
        tunerail.evaluate(cfg, test_data=test, adapter_dir=adapter, base_model=str(model), out_dir=tmp_path / out, cache_dir=cache)
    return tunerail.evaluate(
        cfg, test_data=test, adapter_dir=adapter, base_model=str(model), out_dir=tmp_path / out, cache_dir=cache, allow_changed_adapter=True
    )


def test_a_cached_output_overwritten_with_the_gold_answers_is_recomputed_and_named(tmp_path, banking_example):
    """Also: evaluate() refuses the changed adapter, and --allow-changed-adapter is recorded in the report."""
    from tunerail.eval.generate import CACHE_STATS

    cache = tmp_path / "cache"
    first = _tiny_eval(tmp_path, banking_example, cache, "out1")
    gold = [json.loads(line)["category"] for line in (tmp_path / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    assert first.metrics["tuned"]["accuracy"]["value"] < 0.5  # a random tiny model
    assert first.lineage["adapter_check"]["state"].startswith("changed, used anyway (--allow-changed-adapter)")
    forged = 0
    for path in cache.glob("*.json"):  # the attack: every cached list of 12 answers becomes the gold answers
        entry = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(entry, dict) and isinstance(entry.get("value"), list) and len(entry["value"]) == 12:
            entry["value"], forged = gold, forged + 1
        elif isinstance(entry, list) and len(entry) == 12 and all(isinstance(x, str) for x in entry):
            entry, forged = gold, forged + 1
        else:
            continue
        path.write_text(json.dumps(entry), encoding="utf-8")
    assert forged >= 2  # base generation and tuned constrained decoding at least
    before = dict(CACHE_STATS)
    second = _tiny_eval(tmp_path, banking_example, cache, "out2")
    assert second.metrics["tuned"]["accuracy"]["value"] == first.metrics["tuned"]["accuracy"]["value"]
    assert CACHE_STATS["rejected"] - before["rejected"] == forged
    report = json.loads(Path(second.report_json).read_text(encoding="utf-8"))
    assert "recomputed after a failed integrity check" in report["lineage"]["eval_cache"]
    assert "does not match its SHA-256" in report["lineage"]["eval_cache"]
    # the verdict names what it took from the cache: here the entries nobody touched
    served = re.match(r"(\d+) of (\d+) model outputs served from the cache", report["lineage"]["eval_cache"])
    assert served and int(served[1]) == int(served[2]) - forged


# --- run folders: the adapter is the checkpoint the run stored ------------------------------


@pytest.fixture
def stored_run(tmp_path) -> Path:
    """The serve tests' run folder, with its adapter stored as the run's checkpoint (as `train` does)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from serve_fixtures import make_run

    run = make_run(tmp_path, n_train=200, n_test=60)
    artifact = Store(run / ".tunerail" / "store").add_folder("checkpoint", run / "train" / "adapter", transform="train")
    train_json = run / "train" / "train.json"
    train_json.write_text(json.dumps({**json.loads(train_json.read_text()), "checkpoint_id": artifact.id}), encoding="utf-8")
    return run


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # inside the last tensor: the file still loads, the weights differ
    path.write_bytes(bytes(data))


def test_verify_run_dir_names_a_flipped_byte_in_the_adapter(stored_run, capsys):
    assert main(["verify", str(stored_run)]) == 0
    _flip_last_byte(stored_run / "train" / "adapter" / "adapter_model.safetensors")
    capsys.readouterr()
    assert main(["verify", str(stored_run)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "adapter_model.safetensors differs from the store's copy in checkpoint" in err


def test_serve_and_eval_refuse_a_changed_adapter_unless_told_and_record_the_override(stored_run, tmp_path, capsys):
    from tunerail.serve import load_run

    adapter = stored_run / "train" / "adapter"
    assert load_run(stored_run).adapter_check["state"] == "matches"
    _flip_last_byte(adapter / "adapter_model.safetensors")
    with pytest.raises(GuardrailError, match="adapter_model.safetensors differs from the store's copy"):
        load_run(stored_run)
    capsys.readouterr()
    assert main(["serve", str(stored_run)]) == 2
    assert "--allow-changed-adapter" in " ".join(capsys.readouterr().err.split())
    test = stored_run / "split" / "test.jsonl"
    args = ["eval", "-c", str(stored_run / "tunerail.yaml"), "--test", str(test), "--adapter", str(adapter)]
    assert main([*args, "--out", str(tmp_path / "eval")]) == 2
    allowed = load_run(stored_run, allow_changed_adapter=True).adapter_check
    assert allowed["state"].startswith("changed, used anyway") and "adapter_model.safetensors" in allowed["problems"][0]
    from tunerail.serve.run import record_override

    record = record_override(load_run(stored_run, allow_changed_adapter=True), "serve", "--allow-changed-adapter")
    entry = json.loads(record.read_text(encoding="utf-8").splitlines()[-1])
    assert entry["command"] == "serve" and entry["flag"] == "--allow-changed-adapter" and entry["problems"]


# --- budget and cost survive a resume -------------------------------------------------------


def _tiny_train(tmp_path, epochs: float = 10 / 12):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import torch
    from train_tiny import banking_rows, tiny_config, write_jsonl

    torch.set_num_threads(1)
    tr = write_jsonl(tmp_path / "train.jsonl", banking_rows(96))
    va = write_jsonl(tmp_path / "val.jsonl", banking_rows(24, offset=1000))
    cfg = tiny_config(tmp_path, learning_rate=1e-3, epochs=epochs, eval_steps=5, patience=100)  # 12 steps per epoch
    return cfg, tr, va


def test_a_resume_past_the_budget_takes_no_further_step(tmp_path):
    from tunerail.train import train

    cfg, tr, va = _tiny_train(tmp_path, epochs=5)  # 60 steps: far more than a second of training anywhere
    cfg.budget.max_hours = 1.0 / 3600
    first = train(cfg, train_data=tr, validation_data=va, out_dir=tmp_path / "run", progress=lambda *_: None)
    assert first.stopped_reason == "budget" and first.actual["steps"] < 60
    again = train(cfg, train_data=tr, validation_data=va, out_dir=tmp_path / "run", resume=True, progress=lambda *_: None)
    assert again.stopped_reason == "budget"
    assert again.actual["steps"] == first.actual["steps"] and again.actual["seconds"] == first.actual["seconds"]


def test_time_trained_after_the_last_checkpoint_by_a_killed_session_counts_after_resume(tmp_path, monkeypatch):
    from tunerail.train import budget, train
    from tunerail.train.recipe import TrainHooks

    monkeypatch.setattr(budget, "CLOCK_SECONDS", 0.0, raising=False)  # the clock file follows every step
    cfg, tr, va = _tiny_train(tmp_path)
    cfg.budget.price_per_hour = 3600.0  # 1 per second: cost == seconds

    def crash(step: int, _evaluating: bool) -> str | None:
        if step == 8:  # the last checkpoint is step 5's
            raise RuntimeError("killed")
        return None

    with pytest.raises(RuntimeError, match="killed"):
        train(cfg, train_data=tr, validation_data=va, out_dir=tmp_path / "run", hooks=TrainHooks(on_step=crash), progress=lambda *_: None)
    paid = json.loads((tmp_path / "run" / "checkpoints" / "clock.json").read_text())["elapsed"]
    done = train(cfg, train_data=tr, validation_data=va, out_dir=tmp_path / "run", resume=True, progress=lambda *_: None)
    at = {h["step"]: h["seconds"] for h in done.history}
    assert done.actual["lost_seconds"] == pytest.approx(paid - at[5], abs=0.01) and done.actual["lost_seconds"] > 0
    assert at[10] - at[5] > done.actual["lost_seconds"]  # the history clock continues from the paid clock
    assert done.actual["cost"] == pytest.approx(done.actual["seconds"], abs=0.01)
