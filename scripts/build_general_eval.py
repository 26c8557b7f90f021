"""Build tunerail/resources/general_eval.jsonl, the forgetting suite (run once; output is committed).

Source: Self-Instruct's user-oriented instructions (252 expert-written tasks, Apache-2.0),
https://github.com/yizhongw/self-instruct/blob/main/human_eval/user_oriented_instructions.jsonl

How the rows are built (deterministic, seed 13):
1. Take the first instance of every task whose instruction + input is at most 360 characters
   and whose output is 20-400 characters (short rows keep the suite under a minute on CPU).
2. Truncate each output to 120 characters at a word boundary (the answer-NLL task scores a
   reference continuation; a prefix is enough to see a distribution shift).
3. Pick 40 rows spread over the source apps (round-robin by ``motivation_app``).
4. Multiple choice: each row gets 4 options, its own (truncated) output and the outputs of 3
   other rows from a DIFFERENT app, shuffled; ``answer`` is the index of the right one. A model
   that still follows instructions should prefer the answer to the question it was asked.

Usage: python scripts/build_general_eval.py ../shared/data/instruct/user_oriented_instructions.jsonl
"""

from __future__ import annotations

import json
import random
import sys
from collections import defaultdict
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tunerail" / "resources" / "general_eval.jsonl"


def truncate(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " ..."


def main(source: str, n_rows: int = 40, seed: int = 13) -> None:
    by_app: dict[str, list[dict]] = defaultdict(list)
    for line in Path(source).read_text(encoding="utf-8").splitlines():
        task = json.loads(line)
        inst = task["instances"][0]
        prompt = task["instruction"] + (f"\n\n{inst['input']}" if inst["input"].strip() else "")
        if len(prompt) > 360 or not 20 <= len(inst["output"]) <= 400:
            continue
        by_app[task["motivation_app"]].append(
            {"id": task["id"], "app": task["motivation_app"], "prompt": prompt, "output": truncate(inst["output"])}
        )
    rows: list[dict] = []
    apps = sorted(by_app)
    while len(rows) < n_rows and any(by_app.values()):
        for app in apps:
            if by_app[app] and len(rows) < n_rows:
                rows.append(by_app[app].pop(0))
    rng = random.Random(seed)
    for row in rows:
        others = [r["output"] for r in rows if r["app"] != row["app"]]
        choices = rng.sample(others, 3) + [row["output"]]
        rng.shuffle(choices)
        row["choices"] = choices
        row["answer"] = choices.index(row["output"])
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} rows from {len(apps)} apps to {OUT}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/instruct/user_oriented_instructions.jsonl")
