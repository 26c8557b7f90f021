"""Code answers (issue 25 §3): the parser judges where a Python answer ends, and "the given list" in a request for a
function is the function's argument, not a missing input. Real rows: tests/data/mbpp_even_80.jsonl (MBPP, CC-BY-4.0)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from doctor_helpers import flagged, run, write_jsonl
from tunerail.doctor.checks.code_shape import python_code, python_cut_reason
from tunerail.doctor.checks.lengths import answer_style, cut_off_reason

DATA = Path(__file__).parent / "data"


def mbpp() -> list[dict[str, str]]:
    rows = [json.loads(line) for line in (DATA / "mbpp_even_80.jsonl").read_text(encoding="utf-8").splitlines()]
    return [{"instruction": r["text"], "input": "", "output": r["code"]} for r in rows]


def cut(text: str, rng: random.Random) -> str:
    """Cut inside a word or after one, at 30-95 % of the text (as bench/doctor_unseen.py plants cuts)."""
    lo, hi = int(len(text) * 0.3), int(len(text) * 0.95)
    places = [i for i in range(lo, hi) if text[i - 1].isalnum() and (text[i].isalpha() or text[i] == " ")]
    return text[: rng.choice(places)]


def test_a_cut_python_answer_is_named_by_the_parser():
    assert python_cut_reason("def pos_nos(list1):\n  for num") == "does not parse as Python, unlike the data's other code answers"
    assert "does nothing ('res')" in python_cut_reason("def check_subset(a, b):\n  res")
    assert python_cut_reason("def f(x):\n  if x:\n    return 1\n  else:\n    return") == "ends the function with a bare return"
    assert python_cut_reason("    return") == "ends the function with a bare return"  # a function body alone (HumanEval)
    assert "'lud'" in python_cut_reason("def f(ludics):\n\tfirst_ludic = lud")
    for whole in ("def f(x):\n    return x * 2", "    return set(s0) == set(s1)\n", "import re\ndef g(t):\n  return re.findall('a', t)"):
        assert python_cut_reason(whole) is None, whole


def test_python_is_learned_from_the_data_not_assumed():
    assert python_code([r["output"] for r in mbpp()])
    prose = ["Use a loop: for each item, add it to the total (x = x + 1).", "Call print(x) and then return the value."] * 10
    assert not python_code(prose)  # code-like prose that does not parse: the parser is not the judge there


def test_cut_mbpp_answers_are_found_and_whole_ones_left_alone():
    rows = mbpp()
    rng = random.Random(0)
    cuts = [{**r, "output": cut(r["output"], rng)} for r in rows[:30]]
    style = answer_style([r["output"] for r in rows], [r["instruction"] for r in rows])
    assert style.python
    found = [r["output"] for r in cuts if cut_off_reason(r["output"], style=style, context=r["instruction"])]
    assert len(found) >= 27, [r["output"][-40:] for r in cuts if r["output"] not in found]  # 29 of 30 when written
    assert not [r["output"] for r in rows if cut_off_reason(r["output"], style=style, context=r["instruction"])]


def test_a_request_for_a_function_of_the_given_list_is_not_missing_its_input(tmp_path):
    rows = mbpp()
    result = run(write_jsonl(tmp_path / "mbpp.jsonl", rows))
    assert not flagged(result, "instruct.missing_input")
    assert not flagged(result, "lengths.cut_off")
    # the same words asking to summarise the given text, with no text, still are
    rows[0] = {"instruction": "Summarise the given article in two sentences.", "input": "", "output": "The article says that prices rose."}
    assert flagged(run(write_jsonl(tmp_path / "mixed.jsonl", rows)), "instruct.missing_input") == {0}


# requests that differ in one word each answer names (written for this test, in MBPP's style)
TWO_REQUESTS = [
    ("Write a function to find the perimeter of a square.", "def square_perimeter(a):\n  return 4 * a"),
    ("Write a function to find the perimeter of a pentagon.", "def perimeter_pentagon(a):\n  return 5 * a"),
    (
        "Write a python function to find the first even number in a list.",
        "def first_even(nums):\n  return next((n for n in nums if n % 2 == 0), -1)",
    ),
    (
        "Write a python function to find the first odd number in a list.",
        "def first_odd(nums):\n  return next((n for n in nums if n % 2 != 0), -1)",
    ),
    ("Write a function to find the nth octagonal number.", "def octagonal(n):\n  return 3 * n * n - 2 * n"),
    ("Write a function to find the nth hexagonal number.", "def hexagonal(n):\n  return n * (2 * n - 1)"),
]


def test_requests_that_differ_in_a_word_their_answers_name_are_neither_near_copies_nor_conflicts(tmp_path):
    """MBPP (development half): 42 % of clean rows were flagged, mostly as conflicts or near-duplicates of a request one
    word apart ("square" / "pentagon", "even" / "odd"): a ten-word prompt keeps a word-set Jaccard of 0.82."""
    rows = [{"instruction": q, "input": "", "output": a} for q, a in TWO_REQUESTS]
    result = run(write_jsonl(tmp_path / "two.jsonl", rows))
    assert not flagged(result, "labels.conflict") | flagged(result, "duplicates.near")


def test_one_request_asked_twice_is_still_a_near_copy_or_a_conflict(tmp_path):
    """The same request reworded keeps its finding: the same code under "count" / "find" is a near-duplicate, and two
    answers where the added word is named by neither ("capital city") are a conflict."""
    swap = "def min_swaps(a, b):\n  count = sum(x != y for x, y in zip(a, b))\n  return count // 2 if count % 2 == 0 else -1"
    rows = mbpp() + [
        {
            "instruction": "Write a python function to count the minimum number of swaps to turn one binary string into another.",
            "input": "",
            "output": swap,
        },
        {
            "instruction": "Write a python function to find the minimum number of swaps to turn one binary string into another.",
            "input": "",
            "output": swap + " ",
        },
        {"instruction": "What is the capital of the country France?", "input": "", "output": "Paris"},
        {"instruction": "What is the capital city of the country France?", "input": "", "output": "Lyon"},
    ]
    n = len(rows)
    result = run(write_jsonl(tmp_path / "same.jsonl", rows))
    assert {n - 4, n - 3} <= flagged(result, "duplicates.near") | flagged(result, "duplicates.exact")
    assert {n - 2, n - 1} <= flagged(result, "labels.conflict")
