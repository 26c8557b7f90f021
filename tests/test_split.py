"""Split invariants on real Banking77 rows with planted duplicates, paraphrase-like edits and user groups."""

from __future__ import annotations

import csv
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tunerail.config import TunerailConfig
from tunerail.errors import GuardrailError, TunerailError
from tunerail.split import split, verify_frozen_split
from tunerail.store import Store


def _config(**split_kw) -> TunerailConfig:
    cfg = TunerailConfig.model_validate(
        {
            "task": "classification",
            "data": {"format": "text_label", "columns": {"text": "text", "label": "category"}, "group_column": "conv"},
            "criteria": {"margin": 0.1},
            "split": {"semantic": False, **split_kw},
        }
    )
    return cfg


def _rows(banking_example: Path) -> list[dict]:
    with open(banking_example, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "category", "conv"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _split_of(out: Path) -> dict[int, str]:
    """Source row index -> split name, from the _tunerail provenance of each written row."""
    where = {}
    for name in ("train", "validation", "test"):
        for line in (out / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            where[json.loads(line)["_tunerail"]["index"]] = name
    return where


@pytest.fixture
def planted(tmp_path, banking_example):
    """Banking77 rows + 40 exact copies (case/space changed), 20 near copies, 30 conversations."""
    rng = random.Random(0)
    rows = [dict(r, conv="") for r in _rows(banking_example)]
    n = len(rows)
    clusters: list[list[int]] = []
    for src in rng.sample(range(n), 40):
        rows.append({"text": "  " + rows[src]["text"].upper() + " ", "category": rows[src]["category"], "conv": ""})
        clusters.append([src, len(rows) - 1])
    long_rows = [i for i in range(n) if 10 <= len(rows[i]["text"].split()) <= 12]
    for src in rng.sample(long_rows, 20):
        rows.append({"text": rows[src]["text"] + " thanks", "category": rows[src]["category"], "conv": ""})
        clusters.append([src, len(rows) - 1])
    free = [i for i in range(n) if all(i not in c for c in clusters)]
    members = rng.sample(free, 150)
    for k, i in enumerate(members):
        rows[i]["conv"] = f"conversation-{k % 30}"
    groups = defaultdict(list)
    for i in members:
        groups[rows[i]["conv"]].append(i)
    path = _write_csv(tmp_path / "planted.csv", rows)
    return path, clusters, list(groups.values())


def test_no_cluster_or_user_group_crosses_splits(tmp_path, planted):
    path, clusters, groups = planted
    result = split(path, _config(), out_dir=tmp_path / "out", store=tmp_path / "store")
    where = _split_of(tmp_path / "out")
    assert len(where) == sum(result.sizes.values()) == 1560
    for members in clusters + groups:
        assert len({where[i] for i in members}) == 1, members
    by_source = result.groups["by_source"]
    assert by_source["exact"]["clusters"] >= 40 and by_source["user"]["clusters"] == 30
    assert by_source["near"]["clusters"] >= 20
    manifest = json.loads((tmp_path / "out" / "split.json").read_text())
    assert manifest["groups"]["multi_row_groups"] == result.groups["multi_row_groups"] >= 90


def test_stratified_within_one_row_per_class(tmp_path, banking_example):
    rows = [dict(r, conv="") for r in _rows(banking_example)]
    result = split(_write_csv(tmp_path / "d.csv", rows), _config(), out_dir=tmp_path / "out", store=tmp_path / "s")
    totals = Counter(r["category"] for r in rows)
    for name, share in (("train", 0.8), ("validation", 0.1), ("test", 0.1)):
        for label, total in totals.items():
            assert abs(result.per_class[name].get(label, 0) - share * total) <= 1, (name, label)
        assert abs(result.sizes[name] / len(rows) - share) < 0.01


def test_same_seed_same_files_other_seed_other_split(tmp_path, planted):
    path = planted[0]
    a = split(path, _config(seed=1), out_dir=tmp_path / "a", store=tmp_path / "s")
    b = split(path, _config(seed=1), out_dir=tmp_path / "b", store=tmp_path / "s")
    c = split(path, _config(seed=2), out_dir=tmp_path / "c", store=tmp_path / "s")
    assert a.hashes == b.hashes and a.split_id == b.split_id
    assert a.hashes["test.jsonl"] != c.hashes["test.jsonl"]
    assert a.dataset_id == c.dataset_id  # same source snapshot, stored once


def test_refuses_small_test_set_with_figures_and_force_is_recorded(tmp_path, banking_example):
    rows = [dict(r, conv="") for r in _rows(banking_example)]
    path = _write_csv(tmp_path / "d.csv", rows)
    cfg = _config()
    cfg.criteria.margin = 0.05  # 150 test rows give +/-0.079 (Wilson); 381 are needed
    with pytest.raises(GuardrailError) as err:
        split(path, cfg, out_dir=tmp_path / "out", store=tmp_path / "s")
    text = str(err.value)
    assert "+/-0.079" in text and "381 test rows are needed" in text and "--force" in text
    assert not (tmp_path / "out").exists()  # nothing written when refused

    small = _config(train=0.85, validation=0.1, test=0.05)
    with pytest.raises(GuardrailError, match=r"test set has 7\d rows \(5\.\d% of 1500\); at least 10% \(150 rows\)"):
        split(path, small, out_dir=tmp_path / "out", store=tmp_path / "s")

    forced = split(path, cfg, out_dir=tmp_path / "out", store=tmp_path / "s", force=True)
    manifest = json.loads((tmp_path / "out" / "split.json").read_text())
    assert forced.forced and manifest["forced"] is True
    assert any("+/-0.079" in w for w in manifest["warnings"])
    assert Store(tmp_path / "s").get(forced.split_id).meta["forced"] is True


def test_frozen_test_set_refuses_a_changed_file(tmp_path, planted):
    out, store = tmp_path / "out", Store(tmp_path / "s")
    result = split(planted[0], _config(), out_dir=out, store=store)
    expected = result.hashes["test.jsonl"]
    assert verify_frozen_split(out) == expected
    assert verify_frozen_split(out / "test.jsonl", out / "split.json") == expected
    assert verify_frozen_split(out, store) == expected
    from tunerail.cli import main

    assert main(["verify", str(out)]) == 0
    lines = (out / "test.jsonl").read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[3])
    row["category"] = "relabelled"  # a quiet "fix" after seeing results
    lines[3] = json.dumps(row)
    (out / "test.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for reference in (None, out / "split.json", store, expected):
        with pytest.raises(GuardrailError, match="frozen test set changed"):
            verify_frozen_split(out, reference)
    assert main(["verify", str(out)]) == 1  # the CLI names the changed file
    with pytest.raises(TunerailError, match="not found"):
        verify_frozen_split(tmp_path / "nowhere")


def test_split_is_recorded_in_the_store_with_lineage(tmp_path, planted):
    store = Store(tmp_path / "s")
    result = split(planted[0], _config(), out_dir=tmp_path / "out", store=store)
    snapshot, stored = store.get(result.dataset_id), store.get(result.split_id)
    assert snapshot.kind == "dataset" and snapshot.transform == "import" and snapshot.meta["rows"] == 1560
    assert str(planted[0]) in snapshot.meta["sources"]
    assert stored.parents == [snapshot.id] and stored.meta["sizes"] == result.sizes
    assert stored.files["test.jsonl"]["sha256"] == result.hashes["test.jsonl"]
    assert stored.meta["criteria_hash"] == _config().criteria_hash()
    ckpt = store.add("checkpoint", {"adapter.safetensors": b"weights"}, parents=[stored.id], transform="train")
    assert [a.kind for a in store.lineage(ckpt.short_id)] == ["dataset", "split", "checkpoint"]
    assert store.verify() == []


def test_semantic_paraphrases_stay_together(tmp_path):
    """Embedding grouping: two rewordings (no shared 3-gram run) must not be separated."""
    from tunerail.data.records import Record
    from tunerail.data.records import RowRef

    base = [("How do I activate my new card?", "activate"), ("My new card - how can I activate it?", "activate")]
    filler = [(f"question number {k} about topic {k * 7} and item {k * 13}", "other") for k in range(60)]
    records = [
        Record(RowRef(i, i + 2, "mem"), "text_label", [], t, lab, lab, None, {"text": t, "label": lab})
        for i, (t, lab) in enumerate(base + filler)
    ]
    cfg = _config(semantic=True, semantic_threshold=0.85, paraphrase_threshold=None)  # the cosine rule alone
    cfg.criteria.margin = 0.5
    result = split(records, cfg, out_dir=tmp_path / "out", store=tmp_path / "s")
    where = _split_of(tmp_path / "out")
    assert where[0] == where[1]
    assert result.groups["by_source"]["semantic"]["clusters"] >= 1


def test_cli_split_exit_codes_and_force(tmp_path, banking_example, capsys):
    from tunerail.cli import main

    cfg = tmp_path / "tunerail.yaml"
    cfg.write_text(
        "task: classification\n"
        "data: {path: " + str(banking_example) + ", format: text_label, columns: {text: text, label: category}}\n"
        "criteria: {margin: 0.05, threshold: 0.5}\nsplit: {semantic: false}\nstore: {path: store}\n"
    )
    out = tmp_path / "out"
    assert main(["split", "-c", str(cfg), "-o", str(out)]) == 2  # 150 test rows: +/-0.079 > 0.05
    err = capsys.readouterr().err
    assert "Traceback" not in err and "+/-0.079" in err and "381 test rows are needed" in err
    assert main(["split", "-c", str(cfg), "-o", str(out), "--force"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "kept together" in err
    manifest = json.loads((out / "split.json").read_text())
    assert manifest["forced"] and (tmp_path / "store" / "manifests").is_dir()  # store.path is relative to the config
    assert main(["split", str(tmp_path / "missing.csv"), "-c", str(cfg), "-o", str(out)]) == 2


def test_generation_rows_without_labels_split_by_size_and_groups(tmp_path):
    """No labels: sizes follow the shares; chat-style rows of one conversation stay together."""
    from tunerail.data.records import Record
    from tunerail.data.records import RowRef

    records = []
    for k in range(400):
        prompt = f"turn {k}: summarise ticket {k * 31 % 997} about invoice {k * 17 % 101}"
        records.append(
            Record(
                RowRef(k, k + 1, "mem"),
                "prompt_completion",
                [],
                prompt,
                f"summary {k}",
                None,
                f"conv-{k // 4}",
                {"prompt": prompt, "completion": f"summary {k}", "conv": f"conv-{k // 4}"},
            )
        )
    cfg = TunerailConfig.model_validate(
        {**_config().model_dump(exclude={"criteria", "task"}), "task": "generation", "criteria": {"margin": 0.2}}
    )
    result = split(records, cfg, out_dir=tmp_path / "out", store=tmp_path / "s")
    assert result.sizes == {"train": 320, "validation": 40, "test": 40}  # 100 groups of 4: exact shares
    assert not result.manifest["stratified"] and result.per_class["test"] == {}
    where = _split_of(tmp_path / "out")
    assert all(len({where[k] for k in range(g * 4, g * 4 + 4)}) == 1 for g in range(100))


def test_a_different_split_never_silently_replaces_a_frozen_test_set(tmp_path, planted):
    out, store = tmp_path / "out", tmp_path / "s"
    first = split(planted[0], _config(seed=1), out_dir=out, store=store)
    assert split(planted[0], _config(seed=1), out_dir=out, store=store).hashes == first.hashes  # same split: fine
    with pytest.raises(GuardrailError, match="already holds a frozen test set"):
        split(planted[0], _config(seed=2), out_dir=out, store=store)
    assert verify_frozen_split(out) == first.hashes["test.jsonl"]  # untouched
    second = split(planted[0], _config(seed=2), out_dir=out, store=store, force=True)
    assert second.forced and any("replaced the frozen test set" in w for w in second.warnings)


def test_changed_criteria_after_a_frozen_split_are_refused_unless_allowed(tmp_path, planted, capsys):
    """Lowering the threshold after a NOT READY run must not re-freeze: exit 2, then recorded and never READY."""
    from tunerail.cli import main
    from tunerail.eval.frozen import check_frozen

    data = planted[0]
    cfg = tmp_path / "tunerail.yaml"
    text = (
        "task: classification\n"
        f"data: {{path: {data}, format: text_label, columns: {{text: text, label: category}}}}\n"
        "criteria: {margin: 0.1, threshold: 0.8}\nsplit: {semantic: false}\nstore: {path: store}\n"
    )
    cfg.write_text(text)
    out = tmp_path / "out"
    assert main(["split", "-c", str(cfg), "-o", str(out)]) == 0
    frozen = json.loads((out / "split.json").read_text())
    cfg.write_text(text.replace("threshold: 0.8", "threshold: 0.1"))
    capsys.readouterr()
    assert main(["split", "-c", str(cfg), "-o", str(out)]) == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps lines
    assert "criteria.threshold: 0.8 -> 0.1" in err and frozen["frozen"]["sha256"][:12] in err and "Traceback" not in err
    assert json.loads((out / "split.json").read_text()) == frozen  # untouched
    assert main(["split", "-c", str(cfg), "-o", str(out), "--allow-criteria-change"]) == 0
    manifest = json.loads((out / "split.json").read_text())
    assert manifest["criteria_hash"] == frozen["criteria_hash"]  # the frozen criteria stay the reference
    assert manifest["criteria_changed"]["to"]["threshold"] == 0.1
    from tunerail.config import load_config

    state = check_frozen(out / "test.jsonl", out / "split.json", load_config(cfg).criteria_hash())
    assert state["criteria_state"] == "edited"  # -> EVL010 error: the verdict cannot be READY


def test_planted_rewordings_stay_in_one_split_and_leakage_finds_them_in_a_naive_split(tmp_path, banking_example):
    """Issue 13 §8: short queries reworded with a typo or a synonym (bench/paraphrases.py) are kept
    in one split (>= 95 %), which the 0.95 cosine rule alone misses; a naive split that separates
    them is caught by `leakage` (leakage.paraphrase)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from paraphrases import plant

    from tunerail.split.leakage import leakage

    rows = _rows(banking_example)
    pairs = plant([r["text"] for r in rows], 60, seed=2)
    data = [{"text": r["text"], "category": r["category"], "row": k} for k, r in enumerate(rows)]
    data += [{"text": text, "category": rows[src]["category"], "row": len(rows) + k} for k, (src, text) in enumerate(pairs)]
    path = tmp_path / "planted.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
    cfg = TunerailConfig.model_validate(
        {
            "task": "classification",
            "criteria": {"margin": 0.2},
            "data": {"format": "text_label", "columns": {"text": "text", "label": "category"}},
            "split": {"semantic": True},
        }
    )
    split(path, cfg, out_dir=tmp_path / "out", store=tmp_path / "s")
    where = {}
    for part in ("train", "validation", "test"):
        for line in (tmp_path / "out" / f"{part}.jsonl").read_text(encoding="utf-8").splitlines():
            where[json.loads(line)["row"]] = part
    kept = sum(where[src] == where[len(rows) + k] for k, (src, _) in enumerate(pairs))
    assert kept >= 0.95 * len(pairs)

    rng = random.Random(0)
    naive = {"train": [], "test": []}
    for row in data:
        naive["train" if rng.random() < 0.8 else "test"].append(row)
    files = {}
    for name, part in naive.items():
        files[name] = tmp_path / f"naive_{name}.jsonl"
        files[name].write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
    pos = {name: {r["row"]: k for k, r in enumerate(part)} for name, part in naive.items()}
    side = {r["row"]: name for name, part in naive.items() for r in part}
    straddling = [(src, len(rows) + k) for k, (src, _) in enumerate(pairs) if side[src] != side[len(rows) + k]]
    found = leakage(files, config=cfg)
    flagged = {(f.rows[0].index, f.rows[1].index) for f in found.findings}

    def key(a, b):
        return (pos["train"][a], pos["test"][b]) if side[a] == "train" else (pos["train"][b], pos["test"][a])

    hits = sum(key(a, b) in flagged for a, b in straddling)
    assert straddling and hits >= 0.9 * len(straddling)
