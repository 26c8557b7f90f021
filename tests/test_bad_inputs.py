"""The last bad inputs of issue 25 §4: each is a named row in quarantine or a named error, never a silent pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunerail.cli import main
from tunerail.data import load_records
from tunerail.errors import DataError, TunerailError


def _err(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())  # rich wraps long lines


def _strict_json(line: str) -> dict:
    """Parse as a reader that follows the JSON standard would (NaN/Infinity refused)."""

    def refuse(token: str) -> None:
        raise ValueError(f"{token} is not JSON")

    return json.loads(line, parse_constant=refuse)


def _rows(n: int, labels: str = "ab") -> str:
    return "".join(json.dumps({"text": f"customer question number {i}", "label": labels[i % len(labels)]}) + "\n" for i in range(n))


def _config(tmp_path: Path, data: Path, fmt: str = "text_label") -> Path:
    path = tmp_path / "tunerail.yaml"
    path.write_text(f"project: t\ntask: classification\ndata:\n  path: {data.name}\n  format: {fmt}\ncriteria:\n  threshold: 0.5\n")
    return path


def test_nan_and_infinity_rows_are_quarantined_with_line_and_field_and_outputs_stay_json(tmp_path):
    import tunerail

    data = tmp_path / "d.jsonl"
    data.write_text('{"text": NaN, "label": "a"}\n' + _rows(20) + '{"text": "fine text", "label": -Infinity}\n')
    records, rejected, _ = load_records(data)
    assert len(records) == 20
    assert [(r.ref.line, r.field) for r in rejected] == [(1, "text"), (22, "label")]
    assert all("NaN or Infinity" in r.reason for r in rejected)

    result = tunerail.doctor(data, out_dir=tmp_path / "out", fix=True, semantic=False)
    assert result.fix is not None and len(result.fix.quarantined) == 2
    for name in ("clean.jsonl", "quarantine.jsonl"):
        for line in (tmp_path / "out" / name).read_text().splitlines():
            _strict_json(line)  # raises on a bare NaN/Infinity


def test_nan_in_a_json_array_element_is_quarantined(tmp_path):
    data = tmp_path / "d.json"
    rows = [{"text": f"row {i}", "label": "ab"[i % 2]} for i in range(5)]
    data.write_text(json.dumps(rows)[:-1] + ', {"text": "x", "label": "a", "score": Infinity}]')
    records, rejected, _ = load_records(data)
    assert len(records) == 5 and [r.field for r in rejected] == ["score"]


def test_a_line_of_deeply_nested_brackets_is_quarantined_not_the_whole_file(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(_rows(10) + "[" * 100_000 + "\n" + _rows(10))
    records, rejected, _ = load_records(data)
    assert len(records) == 20
    assert [r.ref.line for r in rejected] == [11] and "nested too deeply" in rejected[0].reason

    array = tmp_path / "d.json"
    array.write_text('[{"text": "a", "label": "x"}, ' + "[" * 100_000 + ', {"text": "b", "label": "y"}]')
    with pytest.raises(DataError):  # the element after it cannot be located: refused by name, no RecursionError
        load_records(array)


def _quote_csv(tmp_path: Path) -> Path:
    data = tmp_path / "d.csv"
    before = "".join(f"question {i},{'ab'[i % 2]}\n" for i in range(10))
    after = "".join(f"later question {i},{'ab'[i % 2]}\n" for i in range(6))
    data.write_text("text,label\n" + before + '"an unterminated quote,a\n' + after + '"quoted, fine",b\n')
    return data


def test_unterminated_csv_quote_names_the_swallowed_lines_and_reads_them_again(tmp_path):
    data = _quote_csv(tmp_path)
    records, rejected, _ = load_records(data, "text_label")
    assert len(rejected) == 1
    bad = rejected[0]
    assert bad.ref.line == 12 and "lines 13-19" in bad.reason and bad.raw == '"an unterminated quote,a'
    assert [r.prompt for r in records[10:]] == [f"later question {i}" for i in range(6)] + ["quoted, fine"]
    assert len(records) + len(rejected) == 18  # every data line is a row or a quarantined row


def test_a_legitimate_multi_line_csv_cell_is_kept(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text('text,label\n"first line, with a comma\nsecond line",a\nplain,b\n')
    records, rejected, _ = load_records(data, "text_label")
    assert not rejected and records[0].prompt == "first line, with a comma\nsecond line"


def test_csv_quarantine_keeps_the_raw_text_and_the_hint_speaks_of_csv(tmp_path):
    import tunerail

    data = _quote_csv(tmp_path)
    result = tunerail.doctor(data, out_dir=tmp_path / "out", fix=True, semantic=False)
    finding = next(f for f in result.findings if f.check == "format.unparseable")
    assert "CSV" in finding.fix and "JSON" not in finding.fix
    quarantined = [json.loads(line) for line in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert [q["_tunerail"]["raw"] for q in quarantined if q["_tunerail"]["check"] == "format.unparseable"] == ['"an unterminated quote,a']


def test_scalars_are_text_and_lists_or_objects_are_refused_for_every_field(tmp_path):
    data = tmp_path / "d.jsonl"
    lines = [
        {"text": 12, "label": True},
        {"text": False, "label": 3},
        {"text": ["a", "b"], "label": "x"},
        {"text": "ok", "label": ["x"]},
        {"text": {"k": 1}, "label": "x"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in lines))
    records, rejected, _ = load_records(data, "text_label")
    assert [(r.prompt, r.label) for r in records] == [("12", "true"), ("false", "3")]
    assert [(r.ref.line, r.field) for r in rejected] == [(3, "text"), (4, "label"), (5, "text")]
    assert all("a string, number or boolean" in r.reason for r in rejected)

    pc = tmp_path / "pc.jsonl"
    pc.write_text(json.dumps({"prompt": True, "completion": 4.5}) + "\n" + json.dumps({"prompt": "q", "completion": [1]}) + "\n")
    records, rejected, _ = load_records(pc, "prompt_completion")
    assert [(r.prompt, r.completion) for r in records] == [("true", "4.5")] and rejected[0].field == "completion"

    chat = tmp_path / "chat.jsonl"
    turns = [
        [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": 4}],
        [{"role": "user", "content": ["a"]}, {"role": "assistant", "content": "x"}],
    ]
    chat.write_text("".join(json.dumps({"messages": t}) + "\n" for t in turns))
    records, rejected, _ = load_records(chat, "chat")
    assert [r.completion for r in records] == ["4"] and [r.field for r in rejected] == ["messages[0].content"]


@pytest.mark.parametrize("content", ["", "text,label\n", "text,label\n\n\n"])
def test_empty_or_header_only_file_is_exit_2_naming_the_file(tmp_path, capsys, content):
    data = tmp_path / "d.csv"
    data.write_text(content)
    with pytest.raises(DataError) as info:
        load_records(data, "text_label")
    assert info.value.problems[0].file == str(data)
    capsys.readouterr()
    code = main(["doctor", "--config", str(_config(tmp_path, data)), "--no-semantic", "--out", str(tmp_path / "out")])
    err = _err(capsys)
    assert code == 2 and str(data) in err and ("no rows" in err or "empty" in err)


def test_single_label_classification_fails_doctor_and_is_refused_by_split(tmp_path, capsys):
    import tunerail

    data = tmp_path / "d.jsonl"
    data.write_text(_rows(40, labels="a"))
    config = tunerail.load_config(_config(tmp_path, data))
    result = tunerail.doctor(data, config, semantic=False)
    single = [f for f in result.findings if f.check == "balance.single_class"]
    assert len(single) == 1 and single[0].severity == "error" and "'a'" in single[0].message
    with pytest.raises(TunerailError, match="at least two classes"):
        tunerail.split(data, config, out_dir=tmp_path / "split")

    two = tmp_path / "two.jsonl"
    two.write_text(_rows(40))
    assert not [f for f in tunerail.doctor(two, config, semantic=False).findings if f.check == "balance.single_class"]


def _bomb(path: Path, levels: int) -> Path:
    """9 ** (levels + 1) strings once expanded: 8 levels is the 500-byte, 49 s, 2.2 GB case of the issue."""
    lines = ["project: t", "task: classification", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    path.write_text("\n".join([*lines, f"data: *a{levels}", ""]))
    return path


def test_yaml_alias_bomb_is_refused_before_expansion(tmp_path):
    import time

    import tunerail

    for levels in (5, 8):  # 531,441 strings (what today's code expands in about a second), then 387 million
        bomb = _bomb(tmp_path / "bomb.yaml", levels)
        assert len(bomb.read_bytes()) < 600
        start = time.perf_counter()
        with pytest.raises(TunerailError, match="aliases") as info:
            tunerail.load_config(bomb)
        assert time.perf_counter() - start < 5 and info.value.problems[0].file == str(bomb)

    ok = tmp_path / "ok.yaml"  # one level of anchors stays allowed
    ok.write_text("project: t\ncriteria: &c\n  threshold: 0.5\n")
    assert tunerail.load_config(ok).criteria.threshold == 0.5


def test_utf16_config_is_read_and_undecodable_config_is_named(tmp_path, capsys):
    import tunerail

    text = "project: t\ntask: classification\ncriteria:\n  threshold: 0.7\n"
    utf16 = tmp_path / "u16.yaml"
    utf16.write_bytes(text.encode("utf-16"))  # with its byte-order mark, as Windows editors save it
    assert tunerail.load_config(utf16).criteria.threshold == 0.7

    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"project: t\ncriteria:\n  threshold: 0.5 # caf\xe9\xff\n")
    capsys.readouterr()
    assert main(["config", str(bad)]) == 2
    err = _err(capsys)
    assert f"{bad}:3" in err and "UTF-8" in err and "Traceback" not in err and "UnicodeDecodeError" not in err


def test_log_with_an_unknown_kind_is_exit_2_listing_the_kinds(tmp_path, capsys):
    (tmp_path / "store" / "manifests").mkdir(parents=True)
    capsys.readouterr()
    assert main(["log", "--store", str(tmp_path / "store"), "--kind", "bogus"]) == 2
    err = _err(capsys)
    assert "'bogus'" in err and "checkpoint, config, dataset, report, run, split" in err
    assert main(["log", "--store", str(tmp_path / "store"), "--kind", "split"]) == 0


def test_init_onto_a_folder_writes_the_config_inside_it(tmp_path, capsys):
    folder = tmp_path / "project"
    folder.mkdir()
    assert main(["init", str(folder)]) == 0
    assert (folder / "tunerail.yaml").is_file()
    capsys.readouterr()
    assert main(["init", str(folder)]) == 2
    err = _err(capsys)
    assert str(folder / "tunerail.yaml") in err and "--force" in err


def test_monitor_on_random_bytes_names_the_file_as_not_a_traffic_log(tmp_path, capsys):
    import random

    traffic = tmp_path / "traffic.jsonl"
    traffic.write_bytes(random.Random(0).randbytes(4000))
    capsys.readouterr()
    assert main(["monitor", str(traffic), "--reference", str(tmp_path)]) == 2
    err = _err(capsys)
    assert f"{traffic}: is not a traffic log" in err and "wait for more traffic" not in err

    data = tmp_path / "train.jsonl"  # a training file given by mistake
    data.write_text(_rows(30))
    capsys.readouterr()
    assert main(["monitor", str(data), "--reference", str(tmp_path)]) == 2
    assert "has a 'prompt'" in _err(capsys)


def test_review_app_answers_a_superscript_score_and_a_huge_item_id_with_4xx(tmp_path):
    pytest.importorskip("krippendorff")
    import re

    from fastapi.testclient import TestClient
    from review_helpers import make_material

    from tunerail.review.app import create_app
    from tunerail.review.session import open_session

    make_material(tmp_path, 6)
    session = open_session(tmp_path, annotators=["alice"])
    client = TestClient(create_app(session), raise_server_exceptions=False)
    page = client.get(f"/?token={session.tokens['alice']}", follow_redirects=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = client.post("/item/0", data={"csrf": csrf, "preference": "A", "q0a": "³"})
    assert r.status_code == 422 and "scores are 1-" in r.text
    huge = str(10**30)
    assert client.get(f"/item/{huge}").status_code == 404
    assert client.post(f"/item/{huge}", data={"csrf": csrf, "preference": "A"}).status_code == 404
    assert client.get("/item/-1").status_code == 404


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from serve_fixtures import make_run, running_server

    from tunerail.serve import build_state
    from tunerail.serve.app import create_app

    run = make_run(tmp_path_factory.mktemp("serve"), n_train=50, n_test=10, serve={"max_new_tokens": 4})
    state = build_state(run)
    with running_server(create_app(state)) as url:
        yield run, state, url
    state.traffic.close()


def test_serve_refuses_a_seed_past_int64_with_400(served):
    import httpx

    _, _, url = served
    body = {"model": "banking-serve", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.7, "max_tokens": 2}
    r = httpx.post(f"{url}/v1/chat/completions", json={**body, "seed": 10**21}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "seed"
    assert httpx.post(f"{url}/v1/chat/completions", json={**body, "seed": 7}, timeout=60).status_code == 200


def test_serve_caps_the_body_before_parsing_and_logs_a_cut_prompt_with_its_length(served):
    import httpx

    from tunerail.serve import read_traffic
    from tunerail.serve.app import LOG_PROMPT_CHARS, MAX_BODY_BYTES

    run, _, url = served
    big = {"model": "banking-serve", "messages": [{"role": "user", "content": "x" * (MAX_BODY_BYTES + 10)}]}
    r = httpx.post(f"{url}/v1/chat/completions", json=big, timeout=60)
    assert r.status_code == 413
    error = r.json()["error"]
    assert error["code"] == "request_too_large" and error["type"] == "invalid_request_error" and f"{MAX_BODY_BYTES:,}" in error["message"]

    def chunks():  # no Content-Length: the cap holds on the stream as well
        for _ in range(12):
            yield b" " * 100_000

    r = httpx.post(f"{url}/v1/chat/completions", content=chunks(), timeout=60)
    assert r.status_code == 413

    long_prompt = "word " * 10_000  # 50,000 characters: too long for the context, logged as an error
    r = httpx.post(
        f"{url}/v1/chat/completions", json={"model": "banking-serve", "messages": [{"role": "user", "content": long_prompt}]}, timeout=60
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    logged = [rec for rec in read_traffic(run / "traffic").records if rec.get("prompt_chars") == len(long_prompt)]
    assert len(logged) == 1 and len(logged[0]["prompt"]) == LOG_PROMPT_CHARS
    assert len(logged[0]["messages"][0]["content"]) == LOG_PROMPT_CHARS
    assert httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok"


def test_a_capped_row_is_counted_by_extrapolation_not_as_its_first_characters():
    import time

    from tunerail.data.records import Record, RowRef
    from tunerail.models import load_tokenizer
    from tunerail.prompting import training_lengths

    tok = load_tokenizer("bundled:smollm2")
    words = " ".join(f"word{i % 997}" for i in range(40_000))  # ~330,000 characters
    rows = [
        Record(RowRef(0, 1), "prompt_completion", None, words, "short answer."),
        Record(RowRef(1, 2), "prompt_completion", None, "a short question?", "short answer."),
    ]
    exact = training_lengths(tok, rows)
    start = time.perf_counter()
    capped = training_lengths(tok, rows, max_chars=8192)
    assert time.perf_counter() - start < 2
    assert capped[1] == exact[1]  # rows under the cap are counted exactly
    assert abs(capped[0] - exact[0]) / exact[0] < 0.05  # today: 8192 characters' worth, 2 % of the row


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from train_tiny import banking_rows, tiny_config, write_jsonl

    from tunerail.train import train

    tmp = tmp_path_factory.mktemp("resume")
    data = write_jsonl(tmp / "train.jsonl", banking_rows(16)), write_jsonl(tmp / "validation.jsonl", banking_rows(8, offset=1000))
    cfg = tiny_config(tmp, epochs=1, eval_steps=1, patience=10)
    train(cfg, train_data=data[0], validation_data=data[1], out_dir=tmp / "run")
    return cfg, data, tmp / "run"


def _resume(trained_run, out: Path):
    from tunerail.train import train

    cfg, data, _ = trained_run
    return train(cfg, train_data=data[0], validation_data=data[1], out_dir=out, resume=True)


@pytest.mark.slow  # trains the tiny model once (about 25 s on 2 busy cores)
def test_a_cut_latest_json_or_trainable_safetensors_is_named_with_what_to_do(trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run[2], run)
    latest = run / "checkpoints" / "latest.json"
    good = latest.read_text()
    latest.write_text(good[: len(good) // 2])
    with pytest.raises(TunerailError) as info:
        _resume(trained_run, run)
    problem = info.value.problems[0]
    assert problem.file == str(latest) and "damaged" in problem.message and "state-step-" in problem.fix

    latest.write_text(good)
    weights = run / "checkpoints" / json.loads(good)["dir"] / "trainable.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(TunerailError) as info:
        _resume(trained_run, run)
    problem = info.value.problems[0]
    assert problem.file == str(weights) and "cannot be read" in problem.message and "--out" in problem.fix


def test_an_adapter_whose_r_differs_from_its_weights_is_named(tmp_path):
    import shutil

    from eval_fixtures import cached_tiny_pair

    from tunerail.eval.generate import load_model

    model_dir, adapter_dir = cached_tiny_pair()
    adapter = tmp_path / "adapter"
    shutil.copytree(adapter_dir, adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["r"] = config["r"] * 2
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(TunerailError) as info:
        load_model(str(model_dir), adapter)
    problem = info.value.problems[0]
    assert problem.file == str(adapter / "adapter_config.json") and "same run" in problem.fix

    shutil.copytree(adapter_dir, adapter, dirs_exist_ok=True)
    cut = adapter / "adapter_model.safetensors"
    cut.write_bytes(cut.read_bytes()[:50])
    with pytest.raises(TunerailError, match="do not load"):
        load_model(str(model_dir), adapter)
