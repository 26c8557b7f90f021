"""Leakage methods each catch a planted leak of real Banking77 rows, with the exact code and rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunerail.cli import main
from tunerail.config import TunerailConfig
from tunerail.split import split
from tunerail.split.leakage import leakage

CFG = {
    "task": "classification",
    "data": {"format": "text_label", "columns": {"text": "text", "label": "category"}},
    "criteria": {"margin": 0.1, "threshold": 0.5},
    "split": {"semantic": False},
}


@pytest.fixture(scope="module")
def clean_split(tmp_path_factory, banking_example=Path(__file__).resolve().parent.parent / "examples/banking77/train.csv"):
    out = tmp_path_factory.mktemp("split")
    split(banking_example, TunerailConfig.model_validate(CFG), out_dir=out, store=out / "store")
    return out


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_grouped_split_has_no_leak(clean_split, tmp_path):
    sets = {n: clean_split / f"{n}.jsonl" for n in ("train", "validation", "test")}
    result = leakage(sets, config=TunerailConfig.model_validate(CFG), semantic=False, out_dir=tmp_path)
    assert result.findings == [] and not result.failed
    assert [(s["a"], s["b"]) for s in result.summary] == [("train", "validation"), ("train", "test"), ("validation", "test")]


def test_each_method_detects_its_planted_leak(clean_split, tmp_path):
    train, test = _read(clean_split / "train.jsonl"), _read(clean_split / "test.jsonl")
    short = next(i for i, r in enumerate(train) if 8 <= len(r["text"].split()) <= 11)
    long = next(i for i, r in enumerate(train) if len(r["text"].split()) >= 22)
    planted = {
        # exact after normalisation: case and spacing only
        "LEAK001": (short, "  " + train[short]["text"].upper().replace(" ", "   ") + "  "),
        # the first 15 words of a long row, then a different ending: one shared 13-gram
        "LEAK002": (long, " ".join(train[long]["text"].split()[:15]) + " and that is all I wanted to say today"),
    }
    # a 11-12 word row plus one word: no 13-gram, but MinHash Jaccard of 3-word shingles >= 0.8
    near_src = next(i for i, r in enumerate(train) if 11 <= len(r["text"].split()) <= 12 and i != short)
    planted["LEAK003"] = (near_src, train[near_src]["text"] + " please")
    positions = {}
    for code, (src, text) in planted.items():
        positions[code] = len(test)
        test.append({"text": text, "category": train[src]["category"]})
    result = leakage(
        {"train": clean_split / "train.jsonl", "test": _write(tmp_path / "test.jsonl", test)},
        config=TunerailConfig.model_validate(CFG),
        semantic=False,
    )
    found = {(f.code, f.rows[0].index, f.rows[1].index) for f in result.findings}
    assert found == {(code, planted[code][0], positions[code]) for code in planted}
    assert result.failed and result.summary[0]["rows_b_leaking"] == 3
    exact = next(f for f in result.findings if f.code == "LEAK001")
    assert set(exact.details["methods"]) >= {"exact", "ngram13", "near"} and exact.check == "leakage.exact"
    assert exact.rows[1].line == positions["LEAK001"] + 1 and exact.rows[1].file.endswith("test.jsonl")


def test_semantic_paraphrase_is_detected(tmp_path):
    from tunerail.data.records import Record
    from tunerail.data.records import RowRef

    def rec(i: int, text: str) -> Record:
        return Record(RowRef(i, i + 1, None), "text_label", [], text, "x", "x", None, {"text": text})

    train = [rec(0, "How do I activate my new card?"), rec(1, "What is the exchange rate for euros today?")]
    test = [rec(0, "Where can I find the nearest ATM?"), rec(1, "My new card - how can I activate it?")]
    result = leakage({"train": train, "test": test}, semantic=True, semantic_threshold=0.85)
    assert [(f.code, f.check, f.rows[0].index, f.rows[1].index) for f in result.findings] == [("LEAK004", "leakage.semantic", 0, 1)]
    assert 0.85 <= result.findings[0].details["methods"]["semantic"] <= 1.0


def test_html_escapes_row_text_and_json_is_written(tmp_path):
    from tunerail.data.records import Record
    from tunerail.data.records import RowRef

    evil = "<script>alert('x')</script> please refund my card payment now"
    rows = [Record(RowRef(0, 1, None), "text_label", [], evil, "a", "a", None, {"text": evil})]
    leakage({"a": rows, "b": rows}, semantic=False, out_dir=tmp_path)
    html = (tmp_path / "leakage.html").read_text(encoding="utf-8")
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    data = json.loads((tmp_path / "leakage.json").read_text(encoding="utf-8"))
    assert data["failed"] is True and data["findings"][0]["code"] == "LEAK001"
    assert data["summary"][0]["leaking_pairs"] == 1


def test_cli_exit_codes(clean_split, tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps(CFG))  # JSON is valid YAML
    train, test = clean_split / "train.jsonl", clean_split / "test.jsonl"
    assert main(["leakage", str(train), str(test), "-c", str(cfg), "--no-semantic", "-o", str(tmp_path / "ok")]) == 0
    leaky = _write(tmp_path / "leaky.jsonl", _read(test) + _read(train)[:2])
    assert main(["leakage", str(train), str(leaky), "-c", str(cfg), "--no-semantic", "-o", str(tmp_path / "bad")]) == 1
    assert main(["leakage", str(train), str(leaky), "-c", str(cfg), "--no-semantic", "--max-leaks", "5"]) == 0
    assert main(["leakage", str(train), str(tmp_path / "missing.jsonl"), "-c", str(cfg), "--no-semantic"]) == 2
    assert main(["leakage", str(train), "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "missing.jsonl" in err


def test_benchmark_with_other_columns_is_loaded_by_its_own_format(clean_split, tmp_path):
    """Training data vs a public benchmark: the benchmark's columns need not match the config."""
    train = _read(clean_split / "train.jsonl")
    bench = _write(
        tmp_path / "bench.jsonl",
        [{"question": train[5]["text"], "answer": "x"}, {"question": "an unrelated benchmark question about llamas", "answer": "y"}],
    )
    result = leakage({"train": clean_split / "train.jsonl", "benchmark": bench}, config=TunerailConfig.model_validate(CFG), semantic=False)
    assert result.sets["benchmark"]["format"] == "prompt_completion"
    assert [(f.code, f.rows[0].index, f.rows[1].index) for f in result.findings] == [("LEAK001", 5, 0)]
