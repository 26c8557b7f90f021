"""The doctor on data its rules were not tuned on (issue 25 §3): GSM8K test rows, held-out foreign pairs, WNUT-17.

The cut-off rules were tuned on GSM8K *train* and Alpaca, the language rule on tests/data/short_foreign_qa.tsv;
these tests use GSM8K *test* rows (tests/data/gsm8k_test_200.jsonl) and short_foreign_qa_heldout.tsv.
Bounds are the issue's goals: at most 5 % of clean rows flagged, at least 90 % of planted rows found.
"""

from __future__ import annotations

import functools
import json
import random
import re
from pathlib import Path

import pytest

from doctor_helpers import alpaca, flagged, run, write_jsonl
from tunerail.config import TunerailConfig
from tunerail.doctor import doctor
from tunerail.doctor.checks.content import copied_from_prompt
from tunerail.doctor.checks.lengths import AnswerStyle, answer_style, cut_off_reason
from tunerail.doctor.checks.word_ends import rarely_ends
from tunerail.findings import Severity

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parent.parent


def gsm8k(final_line: bool) -> list[dict[str, str]]:
    """The rows as published, or as the issue measured them: no calculator annotations, no final "#### N" line."""
    rows = [json.loads(line) for line in (DATA / "gsm8k_test_200.jsonl").read_text(encoding="utf-8").splitlines()]
    bare = [re.sub(r"\n#### [^\n]*$", "", re.sub(r"<<[^<>\n]*>>", "", r["answer"])) for r in rows]
    return rows if final_line else [{**r, "answer": a} for r, a in zip(rows, bare)]


def heldout_pairs() -> list[tuple[str, str]]:
    lines = (DATA / "short_foreign_qa_heldout.tsv").read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t")[1:]) for line in lines if line and not line.startswith("#")]  # type: ignore[misc]


def warned(result) -> set[int]:
    return {r.index for f in result.findings if Severity(f.severity) >= Severity.WARNING for r in f.rows}


@pytest.mark.parametrize("final_line", [True, False])
def test_worked_math_answers_are_clean_and_foreign_pairs_among_them_are_found(tmp_path, final_line):
    """24.8 % of held-out GSM8K rows were flagged (answers ending in an equation); 9 of 30 foreign pairs passed."""
    rows = gsm8k(final_line)
    spots = random.Random(25).sample(range(len(rows)), 30)
    for i, (q, a) in zip(spots, heldout_pairs()):
        rows[i] = {"question": q, "answer": a}
    result = run(write_jsonl(tmp_path / "gsm.jsonl", rows))
    clean = set(range(len(rows))) - set(spots)
    assert len(warned(result) & clean) <= 0.05 * len(clean)
    assert len(flagged(result, "language.mismatch") & set(spots)) >= 0.9 * len(spots)


def _cut(text: str, rng: random.Random, mid_word: bool) -> str:
    lo, hi = int(len(text) * 0.3), int(len(text) * 0.95)
    if mid_word:
        places = [i for i in range(lo, hi) if text[i - 1].isalpha() and text[i].isalpha()]
    else:
        places = [i for i in range(lo, hi) if text[i] == " " and text[i - 1].isalnum()]
    return text[: rng.choice(places)]


def test_cuts_in_worked_math_answers_are_found_and_clean_ones_are_not():
    """Cuts the old rules let through ("5 vans x 28 student"), found without flagging the clean answers."""
    answers = [r["answer"] for r in gsm8k(final_line=False)]
    style = answer_style(answers, [r["question"] for r in gsm8k(final_line=False)])
    assert not style.punctuated and style.vocabulary  # worked answers end "= 18 dollars", not with a full stop
    assert sum(cut_off_reason(a, style=style) is not None for a in answers) <= 0.05 * len(answers)
    assert "cut mid-word" in cut_off_reason("So there are a total of 5 vans x 28 student", style=style)  # the data writes "28 students"
    assert "cut mid-word" in cut_off_reason(
        "She bought 3 + 4 = <<3+4=7>>7 apples\nShe gave 2 * 3 = <<2*3=6>>6 apples to her neighbo", style=style
    )
    assert "worked lines" in cut_off_reason("He pays 5 * 4 = $<<5*4=20>>20\nThen he saves what is left of his", style=style)
    assert "stops after 1 word" in cut_off_reason("He pays 5 * 4 = $<<5*4=20>>20 for the tickets\nThey", style=style)
    assert cut_off_reason("He pays 5 * 4 = $<<5*4=20>>20 for the tickets\nSo he spends 20 + 5 = $<<20+5=25>>25 in all", style=style) is None


def test_prose_data_still_judges_a_missing_full_stop():
    """Where answers end with punctuation, an unpunctuated sentence is a cut; a title or a list item is not."""
    prose = AnswerStyle(punctuated=True)
    assert cut_off_reason("The best way to learn a language is to practise it every", style=prose) is not None
    assert cut_off_reason("Times can be difficult, but well-chosen techniques", style=prose) is not None
    assert cut_off_reason("The Rise and Fall of the Roman Empire", style=prose) is None
    assert cut_off_reason("1. Apples\n2. Pears\n3. Plums", style=prose) is None


def test_wnut17_extraction_posts_are_content_not_instructions(tmp_path):
    """The bundled demo: posts with a link (6), "this dress code" and 7 posts naming Justin Bieber (the same
    extracted answer) were warnings a user had to read past. For extraction the post is the text to read."""
    cfg = TunerailConfig.model_validate(
        {
            "task": "extraction",
            "data": {"format": "prompt_completion", "columns": {"prompt": "text", "completion": "entities"}},
            "doctor": {"disabled_checks": ["lengths.truncated"]},
        }
    )
    result = doctor(REPO / "examples" / "wnut17" / "posts.jsonl", cfg, semantic=False)
    for check in ("instruct.unseen_input", "instruct.code_missing", "content.boilerplate", "lengths.cut_off"):
        assert flagged(result, check) == set(), check
    assert len(warned(result)) <= 0.05 * result.records
    assert copied_from_prompt('{"person": ["Justin Bieber"], "location": []}', "OMG Justin Bieber is here")
    assert not copied_from_prompt('{"person": ["Justin Bieber"], "location": []}', "a canned answer for everyone")


def test_a_canned_json_answer_is_still_boilerplate(tmp_path):
    """The extraction exception covers answers read out of their own prompts, not one answer given to all."""
    rows = [
        {"prompt": f"Post number {i} about the weather today", "completion": '{"person": ["Justin Bieber"], "location": ["Paris"]}'}
        for i in range(8)
    ]
    result = run(write_jsonl(tmp_path / "b.jsonl", rows), task="extraction")
    assert flagged(result, "content.boilerplate") == set(range(8))


def test_short_foreign_pairs_among_instructions_are_found(tmp_path, shared_data):
    """Issue 25: short German, Italian, Spanish, Dutch, French pairs among Alpaca rows passed in 9 of 30 cases
    ("Hoe laat is het? Het is half vier.": Dutch at 0.96 but "is", "half" are English words too). The word
    frequency rule judges the rows the identifier is unsure of; no English row is taken for foreign."""
    rows = json.loads((shared_data / "instruct" / "alpaca_5000.json").read_text(encoding="utf-8"))[:1000]
    lines = (DATA / "short_foreign_qa.tsv").read_text(encoding="utf-8").splitlines()
    pairs = [line.split("\t")[1:] for line in lines if line and not line.startswith("#")]
    spots = random.Random(3).sample(range(len(rows)), len(pairs))
    for i, (q, a) in zip(spots, pairs):
        rows[i] = {"instruction": q, "input": "", "output": a}
    found = flagged(run(write_jsonl(tmp_path / "a.jsonl", rows)), "language.mismatch")
    assert len(found & set(spots)) >= 0.9 * len(spots)
    assert found - set(spots) <= {i for i, r in enumerate(rows) if "spanish" in r["instruction"].lower()}


def _last_unit_cut(answer: str, keep: int | None) -> str | None:
    """A GSM8K answer ending "= 23 jewels." cut inside its unit: to the singular ("= 23 jewel", ``keep=None``)
    or to its first ``keep`` letters ("= 23 j", "= 23 jew"); None for answers that end otherwise."""
    match = re.search(r"(\d+ )([a-z]{4,})s\.?$", answer)
    if match is None:
        return None
    return answer[: match.start(2)] + (match.group(2) if keep is None else match.group(2)[:keep])


@pytest.mark.parametrize("keep", [1, 3])
def test_a_unit_cut_after_its_number_is_found(keep):
    """Cuts the word list let through: a real word or letter left by the cut ("= 60 m" for "60 minutes",
    "= 23 jew"). The data's words after a number say what is due there. Ten rows cut at a time (5 %, as
    in bench/doctor_unseen.py), four draws."""
    answers = [r["answer"] for r in gsm8k(final_line=False)]
    prompts = [r["question"] for r in gsm8k(final_line=False)]
    cuts = {i: c for i, a in enumerate(answers) if (c := _last_unit_cut(a, keep)) is not None}
    assert len(cuts) >= 40
    found, clean_flagged, planted_total = 0, 0, 0
    for draw in range(4):
        picked = dict(random.Random(draw).sample(sorted(cuts.items()), 10))  # 10 distinct rows of the 15+
        planted = [picked.get(i, a) for i, a in enumerate(answers)]
        style = answer_style(planted, prompts)
        reasons = [cut_off_reason(a, style=style, context=p) for a, p in zip(planted, prompts)]
        found += sum(reasons[i] is not None for i in picked)
        clean_flagged += sum(r is not None for i, r in enumerate(reasons) if i not in picked)
        planted_total += len(picked)
    assert found >= 0.9 * planted_total
    assert clean_flagged <= 0.05 * 4 * (len(answers) - 10)


def test_a_singular_where_the_data_writes_the_plural_is_a_cut():
    """ "= 50 mile" where the 200 answers write "miles" after a number 67 times (a cut "miles."): found;
    the clean answers, which say "a 40 minute drive" too, stay clean."""
    answers = [r["answer"] for r in gsm8k(final_line=False)]
    gsm = answer_style(answers, [r["question"] for r in gsm8k(final_line=False)])
    assert "start of a longer word" in cut_off_reason("She runs 3 miles a day.\nIn total she runs 30+20=50 mile", style=gsm)
    assert "start of a longer word" in cut_off_reason("Their combined weights are 125+498 = 623 pound", style=gsm)
    assert cut_off_reason("She runs 3 miles a day.\nIn total she runs 30+20=50 miles", style=gsm) is None
    # the word used before, but not as a unit ("a mile further"), does not excuse it; "5 liters/min" does
    assert "start of a longer word" in (
        cut_off_reason("She goes a mile further on Sundays.\nIn total she runs 30+20=50 mile", style=gsm) or ""
    )
    assert cut_off_reason("The tap gives 5 liters/min\nTo fill the tub it takes 120 / 5 = 24 min", style=gsm) is None
    assert "start of a longer word" in (cut_off_reason("Since 1 mile is 1760 yards, she runs 3520/1760 = 2 mile", style=gsm) or "")


def test_the_first_letters_of_a_common_word_are_a_cut_even_capitalised():
    """Alpaca rows cut inside a capitalised word ("Data Analyst and Repor", "The Need for Sustainable
    Developme") passed: a capital was taken for a name. "Repor" starts "report" far more often than it
    stands alone; a real name in the prompt, or a word the answer uses before, still passes."""
    prose = AnswerStyle(punctuated=True)
    assert "start of a longer word" in cut_off_reason("Job titles: Data Scientist, Data Engineer, Data Analyst and Repor", style=prose)
    assert "start of a longer word" in cut_off_reason("- Green Computing Practices\n- The Need for Sustainable Developme", style=prose)
    assert cut_off_reason("Quantum libraries:\n- Qiskit\n- Cirq", style=prose, context="Name two libraries, one of them Cirq") is None
    assert "start of a longer word" in cut_off_reason("Thus, x >= 2250\nTh", style=prose)  # a new line's first word
    assert cut_off_reason("To fill the tub, it will take 120 liters / 5 liters/min = 24 min", style=prose) is None


def test_an_unclosed_bracket_or_quote_is_a_cut_and_an_inch_mark_is_not():
    """Alpaca code answers cut inside a string or a call passed (no fence, no full stop expected in code)."""
    assert "unclosed" in cut_off_reason('if (x == true) {\n  System.out.println("Hello')
    assert "unclosed" in cut_off_reason("Mix the flour (about 2 cups")
    assert cut_off_reason('if (x == true) {\n  System.out.println("Hello world");\n}') is None
    gsm = AnswerStyle(punctuated=False)
    assert cut_off_reason('Betty is 48-12 = 36" tall\n12" is the same as 1 foot so Betty is 36/12 = 3 feet tall', style=gsm) is None


def test_a_row_that_closes_its_sentences_is_judged_by_itself_in_mixed_data():
    """Data with many unpunctuated answers (labels, lists, code: the seed tasks) switched the punctuation signals
    off for every row; a row whose own sentences close still shows a cut sentence. A label after a word
    ("coach B") is not a cut letter."""
    mixed = AnswerStyle(punctuated=False)
    assert "no closing punctuation" in cut_off_reason(
        "To share your project, you can upload it. Click the Upload icon located", style=mixed
    )
    assert cut_off_reason("Positive", style=mixed) is None
    answers = [r["answer"] for r in gsm8k(final_line=False)]
    gsm = answer_style(answers, [r["question"] for r in gsm8k(final_line=False)])
    assert cut_off_reason("Coach A spent $290 and coach B $53\nCoach A spent $290-$53=$237 more than coach B", style=gsm) is None


@pytest.mark.parametrize(
    "answer",
    [
        "Thursday:\nMain Dish: Turkey Sandwich, Dessert: Yogurt\nFriday:\nMain Dish: Fish Sticks, Side Dish: Peas, Dessert: Ice Cream",
        "def climb(board):\n    current = board\n    while current.has_successors():\n        if current.value() > 0:\n            return current\nreturn current",
        "- Paint with Mud\n- Build a shelter\n- Make Nature Boats\n- Create a Dam",
        "Cirq",
        "- “Let me tell you something very interesting…” (nature, history)\n- Joke (neutral not abrasive)\n- ask open ended questions",
    ],
)
def test_headings_code_titles_and_names_in_mixed_data_are_not_cuts(answer):
    """Clean seed-task answers the new signals first flagged: a heading's ":" or a list item's "(...)" is no
    sentence the last line fails to close; "Dam" and "Cirq" are a title's word and a name (wordfreq sees
    "dam" alone often; a one-word answer has nothing before it to judge by)."""
    assert cut_off_reason(answer, style=AnswerStyle(punctuated=False)) is None


@pytest.mark.parametrize("answer", ["john.smith@example.com", "collect_data_for_new_project", "Y5@f_7}j"])
def test_one_token_answers_are_not_unpunctuated_sentences(answer):
    """Alpaca answers (an e-mail address, an identifier, a password) were counted as sentences of 3-5 words."""
    assert cut_off_reason(answer, style=AnswerStyle(punctuated=True)) is None
    assert cut_off_reason("I will send the report to my manager", style=AnswerStyle(punctuated=True)) is not None


def test_a_lone_small_letter_after_a_word_is_a_cut_and_after_a_sign_a_variable():
    """Alpaca rows: "- Starting f" (of "from Scratch") passed because the word before it is capitalised;
    "y = mx + b", a complete formula, was flagged because "mx" is lower case."""
    prose = AnswerStyle(punctuated=True)
    assert "cut mid-word" in cut_off_reason("Unleashing Your Inner Drive for Entrepreneurial Success, Starting f", style=prose)
    assert "cut mid-word" in cut_off_reason("<b><IMG s", style=prose)
    assert cut_off_reason("The equation of a line is:\ny = mx + b", style=AnswerStyle(punctuated=False)) is None


def test_a_worked_answer_that_stops_on_its_first_line_is_a_cut():
    """GSM8K's worked answers all run over several lines: one that stops on its first ("He can make 15 x 5 = 75
    batches of pizza dough") lost the rest, though it reads complete (16 of the 39 misses on GSM8K train)."""
    rows = gsm8k(final_line=False)
    answers = [r["answer"] for r in rows]
    firsts = list(range(0, 200, 10))
    for i in firsts:
        answers[i] = re.sub(r"[.!?]$", "", answers[i].splitlines()[0].strip())  # cut where its first line ends
    style = answer_style(answers, [r["question"] for r in rows])
    found = [cut_off_reason(answers[i], style=style, context=rows[i]["question"]) for i in firsts]
    assert sum(r is not None for r in found) >= 0.9 * len(firsts)
    clean = [i for i in range(200) if i not in firsts]
    assert sum(cut_off_reason(answers[i], style=style, context=rows[i]["question"]) is not None for i in clean) <= 0.05 * len(clean)
    assert style.multi_line and not answer_style(["Paris.", "A short answer."] * 150, ["q"] * 300).multi_line  # one-line data: no signal


def test_a_list_with_fewer_items_than_asked_is_a_cut(shared_data):
    """Alpaca rows: "List five genetic diseases." answered by two items stopped short; a count that is not asked
    for ("Given a list of 10 objects") or a measure ("4.3 centimeters") says nothing."""
    rows = {r["instruction"]: r for r in alpaca(shared_data)}
    diseases = rows["List five genetic diseases."]
    assert cut_off_reason(diseases["output"], context=diseases["instruction"]) is None
    assert "asks for 5" in cut_off_reason("1. Cystic Fibrosis \n2. Sickle Cell", context=diseases["instruction"])
    assert "asks for 3" in cut_off_reason("1. Raising Her Sisters", context="Create three possible titles for the following script")
    ranked = next(r for k, r in rows.items() if k.startswith("Given a list of 10 objects"))
    assert cut_off_reason(ranked["output"], context=ranked["instruction"] + "\n" + ranked["input"]) is None
    assert cut_off_reason("521.68 cm2", context="a cylinder with the radius of 4.3 centimeters and a height of 9.2 centimeters") is None


def test_short_foreign_posts_with_json_answers_are_found(tmp_path):
    """Extraction rows were judged on post + JSON answer, whose keys ("person", "location": English, in every row)
    outweighed a short post: 5 of 30 held-out foreign posts passed ("Was essen Kühe?", "Nombra un planeta.")."""
    rows = [json.loads(line) for line in (REPO / "examples" / "wnut17" / "posts.jsonl").read_text(encoding="utf-8").splitlines()]
    spots = random.Random(26).sample(range(len(rows)), 30)
    for i, (q, _) in zip(spots, heldout_pairs()):
        rows[i] = {"text": q, "entities": json.dumps({"person": [], "location": []})}
    cfg = TunerailConfig.model_validate(
        {
            "task": "extraction",
            "data": {"format": "prompt_completion", "columns": {"prompt": "text", "completion": "entities"}},
            "doctor": {"disabled_checks": ["lengths.truncated"]},
        }
    )
    result = doctor(write_jsonl(tmp_path / "posts.jsonl", rows), cfg, semantic=False)
    assert len(flagged(result, "language.mismatch") & set(spots)) >= 0.9 * len(spots)
    assert len(warned(result) - set(spots)) <= 0.05 * (len(rows) - len(spots))


@functools.lru_cache(maxsize=1)
def _alpaca_style(shared: Path) -> AnswerStyle:
    rows = alpaca(shared)
    return answer_style([r["output"] for r in rows], [f"{r['instruction']}\n\n{r['input']}" for r in rows])


def _alpaca_row(shared: Path, instruction: str) -> dict[str, str]:
    return next(r for r in alpaca(shared) if r["instruction"] == instruction)


@pytest.mark.parametrize(
    ("instruction", "cut_after"),
    [
        ("Generate a recipe for an easy and nutritious lunch", "15 minutes. \n3. He"),
        ("Insert the missing pronoun in the following sentence:\n\nThe dog __ barked at the mailman.", "The dog he"),
    ],
)
def test_a_last_word_the_data_never_ends_with_is_a_cut(shared_data, instruction, cut_after):
    """Alpaca rows cut at a word boundary passed: "3. He", "The dog he" (no final stop expected of a short line or
    a list item). In the data's 5,000 answers and prompts "he" ends a sentence or a line 4 times in 660 uses;
    the words its lists and labels end with ("held, shouted, ran", "Preposition: on") are not judged so."""
    style = _alpaca_style(shared_data)
    row = _alpaca_row(shared_data, instruction)
    cut = row["output"][: row["output"].index(cut_after) + len(cut_after)]
    assert "almost never end" in (cut_off_reason(cut, style=style, context=row["instruction"]) or "")
    assert cut_off_reason(row["output"], style=style, context=row["instruction"]) is None
    assert style.ends is not None and rarely_ends("The dog he", style.ends)
    assert not rarely_ends("Subject: cat\nVerb: sat\nPreposition: on", style.ends)
    assert not rarely_ends("The verbs are: held, shouted, ran", style.ends)


@pytest.mark.parametrize(
    ("instruction", "keep"),
    [("Suggest a new tagline for the article.", "Make Your Vote Count: How Much Is Too Mu"), ("Name a language spoken in Africa.", "Ar")],
)
def test_a_capitalised_start_of_a_word_the_data_never_uses_is_a_cut(shared_data, instruction, keep):
    """Alpaca rows cut inside a capitalised word passed ("... Too Mu", a one-word answer "Ar" for "Arabic"): a
    capital was taken for a name. "Mu" and "Ar" start longer words hundreds of times as often as they stand
    alone, and no other row uses them; the whole answers stay clean."""
    style = _alpaca_style(shared_data)
    row = _alpaca_row(shared_data, instruction)
    assert row["output"].startswith(keep) and row["output"] != keep
    assert "start of a longer word" in (cut_off_reason(keep, style=style, context=row["instruction"]) or "")
    assert cut_off_reason(row["output"], style=style, context=row["instruction"]) is None
    assert cut_off_reason("Quantum libraries:\n- Qiskit\n- Cirq", style=style, context="Name two libraries, one of them Cirq") is None


def test_a_table_row_with_fewer_cells_than_the_rows_above_is_a_cut(shared_data):
    """An Alpaca truth table cut inside its last row ("... 1  0   0\\n1") passed: a number ends a math answer."""
    row = _alpaca_row(shared_data, "Construct a truth table given a set of conditions.")
    assert row["output"].endswith("1  1   1")
    assert "1 of 3 cells" in (cut_off_reason(row["output"][: -len("  1   1")], context=row["instruction"]) or "")
    assert cut_off_reason(row["output"], context=row["instruction"]) is None


def test_a_function_in_math_notation_is_the_given_function(tmp_path, shared_data):
    """An Alpaca row ("provide a valid array of numbers as input to the given function", input "f(x) = x + 5",
    answered by a JSON list) was flagged as a code task without its code; without the input it still is."""
    rows = alpaca(shared_data)[:300]
    task = _alpaca_row(shared_data, "Please provide a valid array of numbers as input to the given function.")
    assert task["input"] == "f(x) = x + 5"
    rows += [task, {**task, "input": ""}]
    found = flagged(run(write_jsonl(tmp_path / "a.jsonl", rows)), "instruct.code_missing")
    assert 300 not in found and 301 in found


# one-sentence answers without a final stop, in the style of TruthfulQA's best answers (written for this test)
UNPUNCTUATED = [
    "The most popular cereal in the U.S. without the letter C is Frosted Flakes",
    "No. Nothing happens if you crack your knuckles",
    "Nothing in particular happens if you swallow gum",
    "The seeds pass through your digestive system",
    "It depends on where you live",
    "Fortune cookies probably came from San Francisco",
    "The largest city in the U.S. that is not on a coast is Chicago",
    "There is no single language that everyone speaks",
] * 4


def test_a_few_abbreviations_in_unpunctuated_answers_are_no_style_of_closing_sentences():
    """TruthfulQA (third round, development half): "No. I am your father" and "... in the U.S. that ... is Frosted Flakes"
    were "last sentence has no closing punctuation" because the data's few closed earlier sentences (none but
    abbreviations) set ``last_line_closes``; under MIN_CLOSING_ROWS such rows the data's own ends decide."""
    style = answer_style(UNPUNCTUATED, ["Question?"] * len(UNPUNCTUATED))
    assert not style.punctuated and not style.last_line_closes
    assert cut_off_reason("No. I am your father", style=style) is None
    assert (
        cut_off_reason("The war with the most deaths in which the U.S. did not fight may have been the Taiping Rebellion", style=style)
        is None
    )


def test_a_fraction_or_a_date_is_no_operation_without_its_result():
    style = AnswerStyle(punctuated=False)
    assert cut_off_reason("Al-Qaeda caused the 9/11 attacks", style=style) is None
    assert cut_off_reason("Add 1/2 cup", style=style) is None
    assert cut_off_reason("The bus carries 5 vans x 28", style=style) == "ends with an operation and no result"


def test_a_short_real_word_the_data_lacks_is_no_cut_unless_it_mostly_starts_longer_words():
    """wordfreq knows "eel" and "neon" (Zipf 3.2, 3.6) below the short-word bar of 4.0; "hou" (3.1) is the start of "house"
    and "hour" 900 times as often as a word. The first two ended clean TruthfulQA answers."""
    style = answer_style(UNPUNCTUATED * 7, ["Question?"] * len(UNPUNCTUATED) * 7)  # 224 rows: a vocabulary
    assert style.vocabulary
    assert cut_off_reason("The largest animal in the loch may be an eel", style=style) is None
    assert cut_off_reason("The most common element with two digits is neon", style=style) is None
    assert "cut mid-word" in cut_off_reason("The largest animal in the loch may be in the hou", style=style)


@pytest.mark.parametrize(
    "answer",
    [
        "Mature 17+",
        "Languages: Java and C++",
        "- https://sqlparse.readthedocs.io/en/latest/analyzing/",
        "“You are braver than you think, and capable of more than you imagine.”\n― Roy T. Bennett, The Light in the Heart",
        "Santeclaus by William Gilley\nA Visit From St. Nicholas by Clement Clarke Moore",
        "No. I am your father",
    ],
)
def test_a_rating_a_url_an_attribution_and_an_initial_are_no_cuts(answer):
    """Clean seed-task answers (development from round 3) read as cut: "+" after a number is "or more", a URL ends
    with its slash, an author's line after a quotation has no stop, and "St." or "T." is no sentence's end."""
    assert cut_off_reason(answer, style=AnswerStyle(punctuated=False)) is None


def test_an_open_operator_and_an_unfinished_sentence_after_a_real_one_are_still_cuts():
    mixed = AnswerStyle(punctuated=False)
    assert cut_off_reason("Then add 5 +", style=mixed) == "ends with '+'"
    assert cut_off_reason("See the docs at https://example.org/docs. Then open the", style=mixed) is not None
    assert "no closing punctuation" in cut_off_reason("Mr. Smith came home. He opened the door and looked", style=mixed)
