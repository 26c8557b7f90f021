"""The bundled CommonGen example: its config loads, its rows validate, and its split scores against several references."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from tunerail.config import load_config
from tunerail.data.loaders import load_records

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "commongen"


def test_the_commongen_config_loads_and_every_concept_set_has_several_human_sentences():
    config = load_config(EXAMPLE / "tunerail.yaml")
    assert config.task == "generation" and config.criteria.metric == "rougeL" and config.data.group_column == "set_id"
    records, rejected, _ = load_records(config.resolve(config.data.path), config.data.format, config.data.columns)
    assert not rejected and len(records) > 1500
    rows = [json.loads(x) for x in (EXAMPLE / "concepts.jsonl").read_text(encoding="utf-8").splitlines()]
    by_set: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_set[r["set_id"]].append(r)
    assert len(by_set) == 500
    for members in by_set.values():
        assert 2 <= len(members) <= 4 and len({m["concepts"] for m in members}) == 1  # one prompt, several references
        concepts = members[0]["concepts"].split(", ")
        assert concepts == sorted(concepts) and 3 <= len(concepts) <= 5
    assert (EXAMPLE / "concepts.jsonl").stat().st_size < 1_000_000


def test_the_commongen_split_keeps_each_concept_set_whole_so_test_rows_have_several_references(tmp_path):
    import tunerail

    config = load_config(EXAMPLE / "tunerail.yaml")
    config.split.semantic = False  # the set_id groups are what this checks; the embedding groups only add to them
    result = tunerail.split(config.resolve(config.data.path), config, out_dir=tmp_path / "split", store=tmp_path / "store")
    where: dict[str, set[str]] = defaultdict(set)
    test_refs: dict[str, int] = defaultdict(int)
    for name, path in result.paths.items():
        if not str(path).endswith(".jsonl"):
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            where[row["concepts"]].add(name)
            if name == "test":
                test_refs[row["concepts"]] += 1
    assert all(len(splits) == 1 for splits in where.values())
    assert len(test_refs) >= 100 and sum(n >= 3 for n in test_refs.values()) / len(test_refs) > 0.8
