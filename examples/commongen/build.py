"""Build the bundled CommonGen example: write one everyday sentence that uses every given concept (MIT).

Each row is a concept set (``concepts``: ``catch, dog, frisbee, throw``, the lemmas in alphabetical
order) and one human-written sentence for it (``sentence``). CommonGen's development and test sets
(v1.0) have 2-8 sentences per concept set written by different crowd workers; the rows keep up to
four of them, each as its own row with the same prompt and ``set_id``, so the grouped split keeps a
set in one split and the frozen test set scores each answer against several human sentences. The
human-vs-human score on those same multi-reference sets is the threshold the config states.

Run from the repository root, with the source snapshot fetched as a bare git directory (the v1.0
jsonl files were removed from the repository's later commits, so they are read at the commit below):

    python examples/commongen/build.py [PATH_TO_CommonGen_GIT_DIR]
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

SOURCE = Path("/work/.mirror/INK-USC+CommonGen/repo")
COMMIT = "f8172da93e20a7fcbb71a7cdca2b81fa2e385a73"  # INK-USC/CommonGen, 2020-01-30: the last commit with the v1.0 jsonl files
FILES = ("dataset/final_data/commongen.dev.jsonl", "dataset/final_data/commongen.test.jsonl")
OUT = Path(__file__).resolve().parent / "concepts.jsonl"
SETS = 500  # ~2,000 rows: about 0.6 epoch of them fits the demo's 15 minutes on 2 CPU cores (see tunerail.yaml)
REFS = 4  # sentences kept per set: most sets have 4; capping keeps every test set's weight in the mean equal
SEED = 13


def read_sets(source: Path) -> list[dict]:
    """Every concept set of the dev and test files with >= 2 sentences, with where it came from."""
    sets = []
    for name in FILES:
        text = subprocess.run(["git", f"--git-dir={source}", "show", f"{COMMIT}:{name}"], check=True, capture_output=True, text=True).stdout
        for k, line in enumerate(text.splitlines()):
            item = json.loads(line)
            concepts = sorted(c.rsplit("_", 1)[0] for c in item["concept_set"].split("#"))
            scenes = [s.strip() for s in item["scene"] if s.strip()]
            if len(scenes) >= 2:
                sets.append({"concepts": ", ".join(concepts), "scenes": scenes, "where": f"{Path(name).name}:{k + 1}"})
    return sets


def main(source: Path = SOURCE) -> None:
    rng = random.Random(SEED)
    sets = read_sets(source)
    rows = []
    for item in rng.sample(sets, SETS):
        scenes = item["scenes"] if len(item["scenes"]) <= REFS else rng.sample(item["scenes"], REFS)
        rows += [{"concepts": item["concepts"], "sentence": s, "set_id": item["where"], "source": item["where"]} for s in scenes]
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {OUT}: {len(rows)} rows, {SETS} concept sets of {len(sets)}, up to {REFS} sentences each")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE)
