"""A seeded review to test against: material whose answers carry a visible quality grade, and a
simulated annotator that judges by reading the two answers on the page (it never sees which
system wrote which), so its votes can be recomputed offline from the material alone."""

from __future__ import annotations

import random
import re
from pathlib import Path

from tunerail import stats as S
from tunerail.review import ReviewRow, write_items

SYSTEM_NAMES = ("base", "tuned")
XSS_A = "<script>window.__xss = 1</script>"
XSS_B = '<img src="x" onerror="window.__xss = 2">'
GRADE = re.compile(r"grade (\d)")


def make_material(folder: Path, n: int, seed: int = 5, xss: bool = True) -> Path:
    """``n`` items; tuned answers are graded higher on average; item 0 carries script/img payloads."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        gb, gt = rng.randint(1, 4), min(5, rng.randint(1, 4) + rng.choice([0, 1, 1, 2]))
        prompt = f"Question {i}: how do I reset my card PIN?"
        base_out, tuned_out = f"Reply {i}, grade {gb}. Call the bank.", f"Reply {i}, grade {gt}. Open the app, then Settings."
        if xss and i == 0:
            prompt += " " + XSS_A
            base_out += " " + XSS_A
            tuned_out += " " + XSS_B
        rows.append(ReviewRow(i, i + 2, prompt, f"Reference {i}", base_out, tuned_out, 0.0, 1.0))
    return write_items(rows, folder / "review_items.jsonl")


def judge(annotator: str, text_a: str, text_b: str, item_key: str, scale: int = 5) -> dict:
    """What a (noisy, seeded) annotator answers for two answers: 'A' / 'B' / 'tie' and scores."""
    rng = random.Random(f"{annotator}|{item_key}")
    ga, gb = int(GRADE.search(text_a).group(1)), int(GRADE.search(text_b).group(1))
    pref = "A" if ga > gb else "B" if gb > ga else "tie"
    if rng.random() < 0.15:  # annotators are noisy
        pref = rng.choice(["A", "B", "tie"])
    noisy = lambda g: max(1, min(scale, g + rng.choice([-1, 0, 0, 0, 1])))  # noqa: E731
    return {"preference": pref, "a": [noisy(ga) for _ in range(3)], "b": [noisy(gb) for _ in range(3)]}


def offline_win_rates(records: list[dict]) -> dict:
    """Win rate per system from the simulator's own records (system names joined from the material)."""
    wins = {s: 0 for s in SYSTEM_NAMES}
    ties = 0
    for r in records:
        if r["winner"] == "tie":
            ties += 1
        else:
            wins[r["winner"]] += 1
    decided = sum(wins.values())
    return {s: (wins[s], decided, S.wilson_interval(wins[s], decided)) for s in SYSTEM_NAMES} | {"ties": ties}


def system_of(items: list[dict], text: str) -> tuple[int, str]:
    """(item position, system) of an answer text, from the material (the offline side of the check)."""
    for i, it in enumerate(items):
        for name, out in it["outputs"].items():
            if out == text:
                return i, name
    raise KeyError(text)
