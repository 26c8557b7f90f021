"""Each rule-based doctor check on real rows with planted defects: exact check names, codes, rows."""

from __future__ import annotations

import json
import random

import pytest

from doctor_helpers import FOREIGN, alpaca, banking, flagged, plant, run, user_oriented_chats, write_csv, write_jsonl
from tunerail.config import TunerailConfig
from tunerail.doctor import doctor
from tunerail.stats import rows_needed, wilson_half_width, wilson_interval
from tunerail.doctor.checks.lengths import cut_off_reason
from tunerail.pii import iban_valid, luhn_valid, mask, scan


def codes(result, check):
    return {f.code for f in result.findings if f.check == check}


def test_format_rejections_are_located_and_the_rest_is_audited(tmp_path, shared_data):
    rows: list = alpaca(shared_data)[:30]
    rows[3] = '{"instruction": "Name a colour", "output": '  # broken JSON line
    del rows[5]["output"]
    rows[7]["output"] = "   "
    rows[9]["output"] = ["a", "list"]
    rows[12] = plant("mojibake", rows[12], random.Random(0), 0)
    result = run(write_jsonl(tmp_path / "d.jsonl", rows))

    (bad,) = [f for f in result.findings if f.check == "format.unparseable"]
    assert (bad.code, bad.severity.value, [(r.index, r.line) for r in bad.rows]) == ("DOC001", "error", [(3, 4)])
    assert "line 4" in bad.message
    assert flagged(result, "format.missing_field") == {5, 7}
    assert codes(result, "format.missing_field") == {"DOC002"}
    assert flagged(result, "format.wrong_type") == {9}
    assert result.records == 26 and result.rows_in == 30
    assert flagged(result, "format.mojibake") == {12}  # the rest of the file is still audited


def test_chat_roles_assistant_turn_markup_and_pii(tmp_path, shared_data):
    rows = user_oriented_chats(shared_data)[:40]
    rows[2]["messages"][0]["role"] = "bot"
    rows[4]["messages"] = rows[4]["messages"][:1]
    rows[6]["messages"][1]["content"] += " Reach me at dana.kowalski@gmail.com."
    rows[8]["messages"][1]["content"] = "<p>" + rows[8]["messages"][1]["content"] + "</p>"
    rows[10]["messages"][1]["content"] += " \x1b[31m"
    result = run(write_jsonl(tmp_path / "chat.jsonl", rows))

    assert result.format == "chat"
    assert flagged(result, "format.unknown_role") == {2} and codes(result, "format.unknown_role") == {"DOC004"}
    assert flagged(result, "format.no_assistant_turn") == {4} and codes(result, "format.no_assistant_turn") == {"DOC005"}
    assert flagged(result, "pii.email") == {6}
    assert flagged(result, "format.markup") == {8}
    assert flagged(result, "format.control_chars") == {10}


def test_exact_duplicates_list_every_member_of_each_cluster(tmp_path, banking_example):
    rows = banking(banking_example)[:200]
    rows.append({"text": "  " + rows[3]["text"].upper() + "  ", "category": rows[3]["category"]})  # 200
    rows.append(dict(rows[10]))  # 201
    rows.append({"text": rows[10]["text"].replace(" ", "   "), "category": rows[10]["category"]})  # 202
    result = run(write_csv(tmp_path / "b.csv", rows), task="classification")

    clusters = sorted(sorted(r.index for r in f.rows) for f in result.findings if f.check == "duplicates.exact")
    assert clusters == [[3, 200], [10, 201, 202]]
    dup = [f for f in result.findings if f.check == "duplicates.exact"]
    assert {f.code for f in dup} == {"DOC010"} and len({f.cluster for f in dup}) == 2
    assert all(f.details["fix_action"] == "drop_except_first" for f in dup)


def test_balance_small_class_imbalance_and_language(tmp_path, banking_example):
    rows = banking(banking_example)
    small = rows[0]["category"]
    rows = [r for r in rows if r["category"] != small] + [r for r in rows if r["category"] == small][:5]
    for n, i in enumerate((20, 140, 300, 555, 900)):
        rows[i]["text"] = FOREIGN[n][0]
    result = run(write_csv(tmp_path / "b.csv", rows), task="classification")

    n = len(rows)
    assert flagged(result, "balance.small_class") == set(range(n - 5, n))
    (imb,) = [f for f in result.findings if f.check == "balance.imbalance"]
    assert imb.code == "DOC045" and imb.details["smallest"] == small and imb.details["ratio"] == 15.0
    assert flagged(result, "language.mismatch") == {20, 140, 300, 555, 900}
    (dist,) = [f for f in result.findings if f.check == "language.distribution"]
    assert max(dist.details["languages"], key=dist.details["languages"].get) == "en"


def test_answer_content_checks_on_alpaca(tmp_path, shared_data):
    rows = alpaca(shared_data)[:60]
    canned = "Thank you for your question. Please contact our support team for more information."
    for i in (3, 8, 13, 21, 30):
        rows[i]["output"] = canned
    rng = random.Random(1)
    long_rows = [i for i, r in enumerate(rows) if len(r["output"].split()) >= 25 and i not in (3, 8, 13, 21, 30)]
    cut = long_rows[:3]
    for i in cut:
        rows[i] = plant("cut_off", rows[i], rng, 0)
    rows[40] = plant("refusal", rows[40], rng, 0)
    rows[41] = plant("placeholder_output", rows[41], rng, 0)
    rows[42] = plant("merged", rows[42], rng, 0)
    rows[43] = plant("empty_input_marker", rows[43], rng, 0)
    rows[44] = plant("unseen_input", rows[44], rng, 0)
    rows[45] = plant("empty_answer", rows[45], rng, 0)
    result = run(write_jsonl(tmp_path / "a.jsonl", rows))

    (bp,) = [f for f in result.findings if f.check == "content.boilerplate"]
    assert sorted(r.index for r in bp.rows) == [3, 8, 13, 21, 30] and bp.code == "DOC020"
    assert flagged(result, "lengths.cut_off") == set(cut)
    assert flagged(result, "content.refusal") == {40}
    assert flagged(result, "instruct.placeholder_output") == {41}
    assert flagged(result, "instruct.merged") == {42}
    assert flagged(result, "instruct.empty_input_marker") == {24, 43}  # Alpaca row 24 really has input "<No Input>"
    assert flagged(result, "instruct.unseen_input") == {44}
    assert flagged(result, "lengths.empty_answer") == {45}
    assert {f.code for f in result.findings if f.check.startswith("instruct.")} <= {f"DOC0{n}" for n in range(25, 31)}
    assert any(f.check == "size.too_small" and f.code == "DOC047" for f in result.findings)


def test_truncation_counts_tokens_with_the_chat_template(tmp_path, shared_data):
    rows = alpaca(shared_data)[:20]
    for i in (4, 11):
        rows[i]["output"] = " ".join([rows[i]["output"]] * 40)
    result = run(
        write_jsonl(tmp_path / "a.jsonl", rows),
        disabled=[],
    )
    lengths = result.row_stats["token_lengths"]
    assert len(lengths) == 20 and min(lengths) > 20  # the template's default system prompt counts too
    assert {i for i, n in enumerate(lengths) if n > 512} == {4, 11}
    assert flagged(result, "lengths.truncated") == {4, 11}
    assert codes(result, "lengths.truncated") == {"DOC015"}


def test_pii_validators_and_masking():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB83 WEST 1234 5698 7654 32")
    text = "Mail li@gmail.com, card 4111 1111 1111 1111, key AKIAIOSFODNN7EXAMPLE, docs at admin@example.com"
    assert [m.kind for m in scan(text)] == ["email", "card", "secret"]
    assert mask(text) == "Mail [EMAIL], card [CARD_NUMBER], key [SECRET], docs at admin@example.com"
    assert scan("pi is 3.14159265358979 and 2020-2021 sales were 1234567") == []


@pytest.mark.parametrize(
    "answer, cut",
    [
        ("The capital of France is Paris. It is known for the Eiffel Tower and the Lou", True),
        ("Here is the code:\n```python\nprint('hi')\n", True),
        ("Three benefits are:\n1. Lower costs.\n2. Faster delivery.\n3. Better customer satisf", True),
        ("The capital of France is Paris.", False),
        ("Positive", False),
        ("1. Apples\n2. Pears\n3. Plums", False),
    ],
)
def test_cut_off_heuristics(answer, cut):
    assert (cut_off_reason(answer) is not None) == cut


def test_eval_split_sizes_follow_the_ci_formula():
    assert rows_needed(0.05) == 381  # Wilson at p = 0.5 (the normal approximation says 385)
    assert rows_needed(0.10) == 93
    assert wilson_half_width(381) <= 0.05 < wilson_half_width(380)
    # Right at the extremes, where a bootstrap or normal interval has width 0:
    low, high = wilson_interval(0, 38)
    assert low == 0.0 and 0.09 < high < 0.093


def test_eval_split_finding_on_small_and_large_data(tmp_path, banking_example):
    path = banking_example
    small = run(path, task="classification")
    (f,) = [f for f in small.findings if f.check == "size.eval_split"]
    assert f.severity.value == "warning" and f.details["test_rows"] == 150 and f.details["test_rows_needed"] == 381
    cfg = TunerailConfig(task="classification", criteria={"margin": 0.1}, doctor={"disabled_checks": ["lengths.truncated"]})
    (ok,) = [f for f in doctor(path, cfg, semantic=False).findings if f.check == "size.eval_split"]
    assert ok.severity.value == "info"


def test_doctor_and_split_ask_for_the_same_test_rows(banking_example):
    """One sizing rule: the doctor planned at p = 0.5 (263 rows for the demo's criteria), split at the threshold (253)."""
    from tunerail.split.guards import size_problems

    cfg = TunerailConfig(
        task="classification", criteria={"threshold": 0.4, "margin": 0.06}, doctor={"disabled_checks": ["lengths.truncated"]}
    )
    (f,) = [f for f in doctor(banking_example, cfg, semantic=False).findings if f.check == "size.eval_split"]
    (problem,) = [p for p in size_problems({"validation": 100, "test": 100}, 1000, 0.06, "accuracy", 0.4) if p.field == "split.test"]
    assert f.details["test_rows_needed"] == rows_needed(0.06, 0.4) == 253
    assert f"{f.details['test_rows_needed']} test rows are needed" in problem.message


def test_mask_pii_in_clean_output(tmp_path, shared_data):
    rows = alpaca(shared_data)[:20]
    rows[2]["output"] += " Call me on +44 20 7946 0123 or write to sam.okafor@outlook.com."
    cfg = TunerailConfig(doctor={"disabled_checks": ["lengths.truncated"], "mask_pii": True})
    doctor(write_jsonl(tmp_path / "a.jsonl", rows), cfg, semantic=False, fix=True, out_dir=tmp_path / "out")
    clean = [json.loads(line) for line in (tmp_path / "out" / "clean.jsonl").read_text().splitlines()]
    row = next(r for r in clean if r["_tunerail"]["index"] == 2)
    assert row["output"].endswith("Call me on [PHONE] or write to [EMAIL].")
    assert "outlook.com" not in (tmp_path / "out" / "clean.jsonl").read_text()


def _conflicts(rows):
    from tunerail.data.records import Record
    from tunerail.doctor.context import CheckContext
    from tunerail.doctor.registry import all_checks
    from tunerail.data.records import RowRef

    recs = [Record(RowRef(i, i + 2, "d.csv"), "text_label", [], t, lab, lab) for i, (t, lab) in enumerate(rows)]
    ctx = CheckContext(recs, [], TunerailConfig(task="classification"), "text_label")
    check = next(c for c in all_checks() if c.name == "labels.conflict")
    return [([r.index for r in f.rows], f.severity.value) for f in check.func(ctx)]


def test_words_that_decide_the_label_are_not_a_conflict_even_with_a_duplicate():
    """Issue 13 §8: a qualifier added to a prompt ("direct debit") decides its label; a duplicate
    of one side (removed by --fix) must not turn a near match into a blocking error."""
    base = "There is a payment on my statement that I did not make myself"
    rows = [
        (base, "card_payment_not_recognised"),
        (base, "card_payment_not_recognised"),
        (base.replace("a payment", "a direct debit payment"), "direct_debit_payment_not_recognised"),
        ("I want to cancel my transfer please", "cancel_transfer"),
        ("I want to cancel my transfer please", "cancel_transfer"),
        ("I want to cancel my transfer", "transfer_timing"),
        ("Why was I charged twice for my coffee", "a"),
        ("Why was I charged twice for my coffee", "b"),
    ]
    assert _conflicts(rows) == [([3, 4, 5], "warning"), ([6, 7], "error")]


def test_math_answers_ending_in_a_number_are_not_cut_off():
    """Issue 13 §6: GSM8K-style answers end with a number, not a full stop; a real cut still shows."""
    rng = random.Random(3)
    answers = []
    for _ in range(60):
        a, b = rng.randrange(2, 90), rng.randrange(2, 90)
        steps = (
            f"Natalia sold {a} clips in April.\nIn May she sold {b} clips.\nAltogether she sold {a}+{b} = <<{a}+{b}={a + b}>>{a + b} clips."
        )
        last = rng.choice([f"#### {a + b}", f"The answer is {a + b}", f"Total: ${a + b}.50", f"{a + b}"])
        answers.append(f"{steps}\n{last}")
    assert [a for a in answers if cut_off_reason(a)] == []
    assert cut_off_reason("She sold 48 clips in April.\nIn May she sold half as many, so the total number of clips she sold in") is not None
    assert cut_off_reason("First add the two numbers.\nThen divide the sum by 2 and you get") is not None


def test_near_copies_with_prompt_and_answer_edited_are_near_duplicates(tmp_path, shared_data):
    """Issue 13 §6: a copy whose prompt and answer are each a word or two apart is a near-duplicate
    (>= 95 % at the shipped threshold), not lost between the near-duplicate and conflict checks."""
    rows = alpaca(shared_data)[:1500]
    rng = random.Random(7)
    vocab = sorted({w for r in rows for w in r["output"].split() if w.isalpha()})

    def edit(text):
        words = text.split()
        k = rng.randrange(len(words))
        words[k] = rng.choice(vocab)
        return " ".join(words)

    from tunerail.doctor.near_duplicates import jaccard, shingles

    def whole(x):
        return f"{x['instruction']}\n\n{x['input']}\n{x['output']}" if x["input"] else f"{x['instruction']}\n{x['output']}"

    copies = {}
    for src in rng.sample(range(len(rows)), 600):
        r = rows[src]
        if len(r["output"].split()) < 3:
            continue  # a one- or two-word answer with a word replaced is another answer: a conflict, not a copy
        copy = {"instruction": edit(r["instruction"]), "input": r["input"], "output": edit(r["output"])}
        if 0.84 <= jaccard(shingles(whole(r)), shingles(whole(copy))) <= 0.92:
            copies[src] = copy
        if len(copies) == 60:
            break
    planted = {src: len(rows) + k for k, src in enumerate(copies)}
    data = rows + list(copies.values())
    result = run(write_jsonl(tmp_path / "d.jsonl", data))
    together = set()
    for f in result.findings:
        if f.check == "duplicates.near":
            idx = [r.index for r in f.rows]
            together |= {(a, b) for a in idx for b in idx}
            # generation: a near-copy is the same example twice (warning; --fix keeps the first)
            assert f.severity == "warning" and f.details["fix_action"] == "drop_except_first"
    assert len(planted) == 60
    assert sum((s, c) in together for s, c in planted.items()) >= 0.95 * len(planted)


def test_a_post_with_a_link_beside_its_text_is_content_but_a_bare_link_request_is_not(tmp_path):
    """DOC026 flagged 84 of the bundled WNUT-17 posts: a tweet with a link is content, not 'only a URL'."""
    posts = [  # real rows of examples/wnut17/posts.jsonl: the post is the input, the answer is extracted from it
        "' Breaking Dawn ' Returns to Vancouver on January 11th http://bit.ly/dbDMs8",
        "RT @ climb _ chairman : Part 2 . https://t.co/bmPpwNsOMh",
        "The Road 2 BQ : January 8 http://t.co/mCQRfd3f4W",
    ]
    requests = [
        "Summarize the article at https://example.com/news/2019/markets",
        "Read https://example.org/post/7 and list its main points",
        "http://example.net/video/42",
    ]
    rows = [{"prompt": p, "completion": "Here is what the page says about it, in short."} for p in posts + requests]
    result = run(write_jsonl(tmp_path / "posts.jsonl", rows), task="generation", disabled=[])
    assert flagged(result, "instruct.unseen_input") == {3, 4, 5}
    # Issue 25: in an extraction task every prompt is the text to read (the instruction is the system
    # prompt); a bare link there simply has no entities, and the check does not apply.
    rows = [{"prompt": p, "completion": json.dumps({"person": [], "location": []})} for p in posts + requests]
    assert flagged(run(write_jsonl(tmp_path / "ex.jsonl", rows), task="extraction", disabled=[]), "instruct.unseen_input") == set()
