"""Model and tokenizer loading: the doctor's tokenizer is AutoTokenizer's, without torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_tokenizer_loads_without_importing_torch():
    """Importing AutoTokenizer imports torch (~240 MB RSS): the doctor counting tokens needs none of it."""
    code = (
        "import sys; from tunerail.models import load_tokenizer; "
        "tok = load_tokenizer('bundled:smollm2'); print(type(tok).__name__, 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}
    ).stdout.split()
    assert out[-1] == "False", out


def test_tokenizer_is_the_one_autotokenizer_gives_token_for_token():
    from transformers import AutoTokenizer

    from tunerail.config import TunerailConfig
    from tunerail.data.loaders import load_records
    from tunerail.models import load_tokenizer, resolve_model
    from tunerail.prompting import pick_template, training_lengths

    ours = load_tokenizer("bundled:smollm2")
    auto = AutoTokenizer.from_pretrained(resolve_model("bundled:smollm2"))
    if auto.pad_token is None:
        auto.pad_token = auto.eos_token
    assert type(ours) is type(auto)
    assert ours.special_tokens_map == auto.special_tokens_map and ours.pad_token_id == auto.pad_token_id
    assert ours.chat_template == auto.chat_template
    records, _, _ = load_records(REPO / "examples" / "banking77" / "train.csv")
    template = pick_template(TunerailConfig())
    assert training_lengths(ours, records[:300], template) == training_lengths(auto, records[:300], template)
    texts = [r.prompt for r in records[:300]]
    assert ours(texts)["input_ids"] == auto(texts)["input_ids"]


def test_a_specific_or_custom_tokenizer_class_still_goes_through_autotokenizer(tmp_path):
    from tunerail.models import _generic_tokenizer_folder, resolve_model

    source = Path(resolve_model("bundled:smollm2"))
    assert _generic_tokenizer_folder(str(source))
    for change in ({"tokenizer_class": "LlamaTokenizer"}, {"auto_map": {"AutoTokenizer": ["x.Tok", None]}}):
        folder = tmp_path / next(iter(change))
        folder.mkdir()
        shutil.copy(source / "tokenizer.json", folder)
        declared = json.loads((source / "tokenizer_config.json").read_text(encoding="utf-8"))
        (folder / "tokenizer_config.json").write_text(json.dumps({**declared, **change}), encoding="utf-8")
        assert not _generic_tokenizer_folder(str(folder))
    assert not _generic_tokenizer_folder(str(tmp_path / "missing"))
