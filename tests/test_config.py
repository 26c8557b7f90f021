from pathlib import Path

import pytest

from tunerail.config import STARTER_CONFIG, TunerailConfig, load_config
from tunerail.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tunerail.yaml"
    path.write_text(text)
    return path


def test_starter_config_is_valid(tmp_path):
    cfg = load_config(write(tmp_path, STARTER_CONFIG))
    assert cfg.task == "classification"
    assert cfg.train.method == "lora" and cfg.train.early_stopping


def test_all_errors_reported_with_key_path_and_line(tmp_path):
    path = write(tmp_path, "task: clasification\ndata:\n  pth: x.csv\ntrain:\n  lora: {r: -1}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = {p.field: p for p in info.value.problems}
    assert set(problems) == {"task", "data.pth", "train.lora.r"}
    assert problems["task"].line == 1
    assert problems["data.pth"].line == 3 and "did you mean 'path'" in problems["data.pth"].fix
    assert problems["train.lora.r"].line == 5


def test_invalid_yaml_names_line(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "task: generation\ndata: [unclosed\n"))
    assert info.value.problems[0].line is not None


def test_split_ratios_must_sum_to_one():
    with pytest.raises(ValueError):
        TunerailConfig.model_validate({"split": {"train": 0.8, "validation": 0.2, "test": 0.2}})


def test_relative_paths_resolve_against_config_folder(tmp_path):
    cfg = load_config(write(tmp_path, "data: {path: data/train.csv}\ncriteria: {threshold: 0.5}\n"))
    assert cfg.resolve(cfg.data.path) == tmp_path / "data" / "train.csv"


def test_criteria_hash_changes_with_criteria():
    a = TunerailConfig()
    b = TunerailConfig.model_validate({"criteria": {"threshold": 0.9}})
    assert a.criteria_hash() != b.criteria_hash()


@pytest.mark.parametrize(
    "text, field, words",
    [
        ("train:\n  guards: {divergance: false}\n", "train.guards", "did you mean 'divergence'"),
        ("doctor:\n  disabled_checks: [duplicates.exakt]\n", "doctor.disabled_checks", "did you mean 'duplicates.exact'"),
        ("prompts: []\n", "prompts", "at least 1"),
        ("prompts:\n  - {version: v1, template: 'Classify this'}\n", "prompts.0.template", "no {prompt}"),
        ("prompts:\n  - {version: v1}\n  - {version: v1, system: x}\n", "prompts", "used twice"),
        ("eval: {prompt_version: v2}\n", "eval.prompt_version", "names no prompt"),
        ("criteria:\n  threshold: .nan\n", "criteria.threshold", "finite"),
        ("criteria:\n  metric: acuracy\n", "criteria.metric", "not computed for task 'classification'"),
    ],
)
def test_late_config_mistakes_fail_at_load_time_with_line(tmp_path, text, field, words):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "task: classification\n" + text))
    problem = next(p for p in info.value.problems if p.field == field)
    assert words in str(problem) and problem.line is not None and problem.file


def test_starter_config_shows_the_real_defaults_and_the_field_descriptions(tmp_path):
    """Generated from the schema: every value not marked "example:" is the default, every comment its description."""
    from ruamel.yaml import YAML

    from tunerail.config import STARTER_EXAMPLES, TunerailConfig

    data = YAML(typ="safe").load(STARTER_CONFIG)
    defaults = TunerailConfig().model_dump(mode="json")

    def leaves(node, model, prefix=""):
        """(dotted key, value) of every setting; recurse into config sections, not into dict-valued settings."""
        for key, value in node.items():
            assert key in model.model_fields, f"{prefix}{key}"
            sub = type(getattr(sub_defaults(prefix), key))
            if isinstance(value, dict) and hasattr(sub, "model_fields") and f"{prefix}{key}" not in STARTER_EXAMPLES:
                yield from leaves(value, sub, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    def sub_defaults(prefix):
        node = TunerailConfig()
        for key in filter(None, prefix.split(".")):
            node = getattr(node, key)
        return node

    def defaults_at(dotted):
        node = defaults
        for key in dotted.split("."):
            node = node[key]
        return node

    checked = 0
    for dotted, value in leaves(data, TunerailConfig):
        if dotted not in STARTER_EXAMPLES:
            assert value == defaults_at(dotted), dotted
            checked += 1
    assert checked > 80
    assert "# Cosine similarity of MiniLM prompt embeddings" in STARTER_CONFIG
    assert load_config(write(tmp_path, STARTER_CONFIG)).criteria.threshold == STARTER_EXAMPLES["criteria.threshold"]


@pytest.mark.parametrize(
    "command, field",
    [
        (["leakage"], "split.semantic_threshold"),
        (["sweep"], "sweep.trials"),
        (["sweep"], "sweep.storage"),
        (["serve"], "serve.host"),
        (["monitor"], "monitor.window"),
        (["select"], "model.candidates"),
        (["eval"], "model.base"),
        (["verify"], "store.path"),
        (["split"], "store.path"),
    ],
)
def test_cli_help_reuses_the_field_description(capsys, command, field):
    """An option that overrides a config field shows that field's description (one text, never two)."""
    from tunerail.cli import main
    from tunerail.config import field_help

    assert main([*command, "--help"]) == 0
    words = " ".join(w for w in capsys.readouterr().out.replace("│", " ").split())
    description = " ".join(field_help(field).split(" Default:")[0].split())
    assert description[:60] in words
