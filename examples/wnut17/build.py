"""Build the bundled people-and-places extraction example from WNUT-17 (CC-BY-4.0).

Each row is a social-media post and the people and locations it mentions, as JSON with a fixed
schema: ``{"person": [...], "location": [...]}`` (empty lists when none). Rows are a seeded sample of
WNUT-17 sentences (train, dev and test files pooled) that mention a person or a location, plus
sentences that mention neither (20 %), so the model also learns to answer with empty lists.

Run from the repository root (needs ../shared/data/ner/wnut17, copied unchanged from
leondz/emerging_entities_17):

    python examples/wnut17/build.py
"""

from __future__ import annotations

import html
import json
import random
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[3] / "shared" / "data" / "ner" / "wnut17"
OUT = Path(__file__).resolve().parent / "posts.jsonl"
FILES = ("train.conll", "dev.conll", "test.annotated")
TYPES = ("person", "location")
NONE_SHARE = 0.2  # share of rows with neither type
ROWS = 1000  # keeps the demo inside 15 minutes on 2 CPU cores (see README for the measured time)
SEED = 13


def read_conll(path: Path) -> list[list[tuple[str, str]]]:
    sentences, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if current:
                sentences.append(current)
            current = []
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        current.append((html.unescape(parts[0]), parts[-1]))  # the posts carry HTML entities (&amp;)
    if current:
        sentences.append(current)
    return sentences


def entities(sentence: list[tuple[str, str]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {t: [] for t in TYPES}
    span: list[str] = []
    kind = None
    for token, tag in sentence + [("", "O")]:
        prefix, _, typ = tag.partition("-")
        if kind is not None and not (prefix == "I" and typ == kind):
            if kind in found and " ".join(span) not in found[kind]:
                found[kind].append(" ".join(span))
            kind, span = None, []
        if prefix == "B" or (prefix == "I" and kind is None):
            kind, span = typ, [token]
        elif prefix == "I" and typ == kind:
            span.append(token)
    return found


def main() -> None:
    rng = random.Random(SEED)
    with_entities, without = [], []
    for name in FILES:
        for k, sentence in enumerate(read_conll(SOURCE / name)):
            text = " ".join(token for token, _ in sentence)
            found = entities(sentence)
            row = {"text": text, "entities": json.dumps(found, ensure_ascii=False), "source": f"{name}:{k}"}
            (with_entities if any(found.values()) else without).append(row)
    n_none = round(ROWS * NONE_SHARE)
    rows = rng.sample(with_entities, ROWS - n_none) + rng.sample(without, n_none)
    rng.shuffle(rows)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {OUT}: {len(rows)} rows ({len(with_entities)} with a person or location, {n_none} without)")


if __name__ == "__main__":
    main()
