"""`tunerail init`'s starter config and the CLI's option help, both generated from the schema's field descriptions."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from tunerail.config.load import section_model
from tunerail.config.schema import TunerailConfig

# `tunerail init`: the starter config is GENERATED from the schema, so every value shown is the real
# default and every comment is the field's own description (one text, no drift). Only the keys
# below carry an example value instead, marked "example:" in the file.
STARTER_EXAMPLES: dict[str, Any] = {
    "project": "my-project",
    "task": "classification",
    "data.path": "data/train.csv",
    "prompts": [
        {"version": "v1", "system": "Classify the customer's banking query. Answer with the intent label only.", "template": "{prompt}"}
    ],
    "criteria.metric": "accuracy",
    "criteria.threshold": 0.70,
    "criteria.min_improvement": 0.10,
    "budget.max_hours": 1.0,
}
STARTER_SECTIONS = ("data", "model", "prompts", "criteria", "budget", "doctor", "split", "train", "eval", "pipeline", "tracking", "store")


def _yaml_value(value: Any) -> str:
    """A value in YAML flow style (JSON is valid YAML: strings quoted, null/true/false as YAML has them)."""
    return json.dumps(value, ensure_ascii=False)


def _comment(description: str | None, example: bool) -> str:
    """The description's first sentence (``e.g.`` does not end one), at most 110 characters."""
    import re

    text = " ".join((description or "").split())
    first = re.split(r"(?<!e\.g)(?<!i\.e)\.\s", text, maxsplit=1)[0].rstrip(".")
    first = first if len(first) <= 110 else first[:109] + "…"
    return ("example: " if example else "") + first


def _starter_lines(model: type[BaseModel], defaults: BaseModel, prefix: str, indent: int) -> list[str]:
    lines = []
    pad = "  " * indent
    for name, info in model.model_fields.items():
        if name == "source":
            continue
        dotted = f"{prefix}{name}"
        value = getattr(defaults, name)
        if isinstance(value, BaseModel) and dotted not in STARTER_EXAMPLES:
            lines.append(f"{pad}{name}:" + (f"  # {_comment(info.description, False)}" if info.description else ""))
            lines += _starter_lines(type(value), value, dotted + ".", indent + 1)
            continue
        example = dotted in STARTER_EXAMPLES
        shown = (
            STARTER_EXAMPLES[dotted]
            if example
            else value.model_dump(mode="json")
            if isinstance(value, BaseModel)
            else [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
            if isinstance(value, list)
            else value
        )
        comment = _comment(info.description, example)
        lines.append(f"{pad}{name}: {_yaml_value(shown)}" + (f"  # {comment}" if comment else ""))
    return lines


def starter_config() -> str:
    """The commented starter ``tunerail.yaml``: real defaults from the schema, a few marked examples."""
    defaults = TunerailConfig()
    fields = TunerailConfig.model_fields
    lines = [
        "# tunerail.yaml: run the whole guarded pipeline with `tunerail run tunerail.yaml`.",
        "# Every key is optional; each value is the default (generated from the schema) unless marked",
        '# "example:". Criteria are fixed BEFORE training: they are frozen with the test split.',
        f"project: {_yaml_value(STARTER_EXAMPLES['project'])}  # example: {_comment(fields['project'].description, False)}",
        f"task: {_yaml_value(STARTER_EXAMPLES['task'])}  # example: {_comment(fields['task'].description, False)}",
        "",
    ]
    for section in STARTER_SECTIONS:
        info = fields[section]
        if section in STARTER_EXAMPLES:
            lines.append(f"{section}: {_yaml_value(STARTER_EXAMPLES[section])}  # example: {_comment(info.description, False)}")
        else:
            value = getattr(defaults, section)
            lines.append(f"{section}:" + (f"  # {_comment(info.description, False)}" if info.description else ""))
            lines += _starter_lines(type(value), value, section + ".", 1)
        lines.append("")
    return "\n".join(lines)


def field_help(dotted: str) -> str:
    """A config field's description, for the CLI option that overrides it (one text for docs and --help)."""
    *parents, last = dotted.split(".")
    model = section_model(parents) if parents else TunerailConfig
    if model is None or last not in model.model_fields:
        raise KeyError(f"no config field {dotted!r}")
    return f"{model.model_fields[last].description} Default: config {dotted}."


STARTER_CONFIG = starter_config()
