"""Every assistant turn of a chat record is trained (train.loss_on), and the doctor counts and cuts rows as training does."""

from __future__ import annotations

import pytest

from doctor_helpers import alpaca, write_jsonl

THREE_TURNS = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": "And 3+3?"},
    {"role": "assistant", "content": "6"},
]


@pytest.fixture(scope="module")
def tok():
    from tunerail.models import load_tokenizer

    return load_tokenizer("bundled:smollm2")


def _record(messages, index=0):
    from tunerail.data.loaders import to_record
    from tunerail.data.records import RawRow, RowRef

    return to_record(RawRow(RowRef(index, index + 1, "chats.jsonl"), {"messages": messages}), "chat", None)


def _chats(shared_data, n, turns=3):
    """Real Alpaca pairs chained into ``turns``-turn conversations."""
    rows = alpaca(shared_data)
    out = []
    for i in range(n):
        msgs = [{"role": "system", "content": "You are a helpful assistant."}]
        for row in rows[i * turns : (i + 1) * turns]:
            msgs += [{"role": "user", "content": row["instruction"]}, {"role": "assistant", "content": row["output"]}]
        out.append({"messages": msgs})
    return out


def _trained(tok, example):
    """Decoded text of each labelled run of the collated batch row."""
    from tunerail.train.data import collate

    labels = collate([example], tok.pad_token_id)["labels"][0].tolist()
    runs, current = [], []
    for t in labels + [-100]:
        if t == -100 and current:
            runs.append(tok.decode(current))
            current = []
        elif t != -100:
            current.append(t)
    return runs


def test_loss_masks_of_a_three_turn_record(tok):
    from tunerail.train.data import tokenize_records

    record = _record(THREE_TURNS)
    every = tokenize_records([record], tok, None, max_length=256)[0]  # the default is loss_on="all"
    last = tokenize_records([record], tok, None, max_length=256, loss_on="last")[0]
    whole = tokenize_records([record], tok, None, max_length=256, loss_on="sequence")[0]

    # the ids are the tokenised chat template, whatever the loss covers
    text = tok.apply_chat_template(THREE_TURNS, tokenize=False)
    assert every.input_ids == last.input_ids == whole.input_ids == tok(text, add_special_tokens=False)["input_ids"]
    # exact positions: 18 tokens of system + first user turn + "<|im_start|>assistant\n", then "Hello!<|im_end|>\n" ...
    assert every.spans == [(18, 22), (35, 38), (53, 56)] and every.length == 56
    assert _trained(tok, every) == ["Hello!<|im_end|>\n", "4<|im_end|>\n", "6<|im_end|>\n"]  # the stop token is learned each turn
    assert last.spans == [(53, 56)] and _trained(tok, last) == ["6<|im_end|>\n"]
    assert whole.spans == [(0, 56)]
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert [every.input_ids[end - 2] for _, end in every.spans] == [im_end] * 3


def test_truncation_cuts_from_the_left_and_no_partial_turn_is_trained(tok):
    from tunerail.train.data import tokenize_records

    record = _record(THREE_TURNS)
    cut = tokenize_records([record], tok, None, max_length=30)[0]
    assert cut.truncated and cut.length == 30 and cut.full_length == 56
    assert tok.decode(cut.input_ids).startswith("+2?<|im_end|>")  # the oldest tokens went first
    assert _trained(tok, cut) == ["4<|im_end|>\n", "6<|im_end|>\n"]  # the first turn fell out whole
    mid = tokenize_records([record], tok, None, max_length=20)[0]  # keeps only "<|im_end|>\n" of turn 2
    assert tok.decode(mid.input_ids).startswith("<|im_end|>\n<|im_start|>user")
    assert _trained(tok, mid) == ["6<|im_end|>\n"]  # a turn that lost its start is context, not loss
    tiny = tokenize_records([record], tok, None, max_length=2)[0]
    assert tiny.length == 2 and tiny.spans == [(1, 2)]  # never a row with nothing to learn


def test_doctor_token_counts_and_cut_agree_with_training(tmp_path, tok, shared_data):
    from tunerail.config import TunerailConfig
    from tunerail.data.loaders import load_records
    from tunerail.doctor import doctor
    from tunerail.prompting import pick_template, training_lengths
    from tunerail.train.data import tokenize_records

    rows = _chats(shared_data, 12) + [{"messages": THREE_TURNS}]
    path = write_jsonl(tmp_path / "chats.jsonl", rows)
    cfg = TunerailConfig(task="generation", model={"max_seq_length": 256}, doctor={"disabled_checks": []})
    records, _, _ = load_records(path, "auto")
    examples = tokenize_records(records, tok, pick_template(cfg), max_length=256)
    assert training_lengths(tok, records, pick_template(cfg)) == [e.full_length for e in examples]

    result = doctor(path, cfg, semantic=False)
    assert result.row_stats["token_lengths"] == [e.full_length for e in examples]
    flagged = {r.index: f for f in result.findings if f.check == "lengths.truncated" for r in f.rows}
    assert set(flagged) == {i for i, e in enumerate(examples) if e.truncated} and len(flagged) >= 2
    assert any("leave the loss" in f.message for f in flagged.values())
    for i, finding in flagged.items():
        e = examples[i]
        assert f"{e.full_length} tokens" in finding.message
        earlier = len(rows[i]["messages"]) // 2 - 1  # assistant turns before the last
        trained_earlier = len(e.spans) - 1
        if trained_earlier < earlier:
            assert f"{earlier - trained_earlier} of its {earlier} earlier assistant turn(s) leave the loss" in finding.message
        else:
            assert "leave the loss" not in finding.message


def test_loss_on_defaults_to_every_turn_and_rejects_old_names():
    from pydantic import ValidationError

    from tunerail.config import TrainConfig

    assert TrainConfig().loss_on == "all"
    with pytest.raises(ValidationError, match="'all', 'last' or 'sequence'"):
        TrainConfig(loss_on="answer")
