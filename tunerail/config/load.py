"""Reading ``tunerail.yaml``: every problem reported at once, with its key path, line and fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from tunerail.config.schema import TunerailConfig
from tunerail.config_read import read_config_text, refuse_alias_bomb
from tunerail.errors import ConfigError, Problem


def load_config(path: str | Path | None = None) -> TunerailConfig:
    """Read and validate a YAML config; every problem is reported with its key path and line."""
    if path is None:
        return TunerailConfig()
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    path = Path(path)
    if not path.exists():
        raise ConfigError(Problem("config file not found", file=str(path), fix="run `tunerail init` to write a starter config"))
    yaml = YAML(typ="rt")
    try:
        data = yaml.load(read_config_text(path)) or {}
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(
            Problem(f"invalid YAML: {getattr(exc, 'problem', exc)}", file=str(path), line=(mark.line + 1) if mark else None)
        ) from None
    except RecursionError:
        raise ConfigError(
            Problem("invalid YAML: nested too deeply", file=str(path), fix="a config is a few levels deep: check the file")
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(Problem("the config must be a mapping of sections (task, data, model...)", file=str(path), line=1))
    refuse_alias_bomb(data, path)
    try:
        config = TunerailConfig.model_validate(_plain(data))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            err = _locate_root_error(err)
            loc = [str(p) for p in err["loc"]]
            problems.append(
                Problem(_explain(err), file=str(path), line=_line_of(data, err["loc"]), field=".".join(loc) or None, fix=_fix_for(err, loc))
            )
        raise ConfigError(problems) from None
    _require_criterion(config, data, path)
    config.source = str(path)
    return config


def _require_criterion(config: TunerailConfig, data: Any, path: Path) -> None:
    """A project needs a success criterion fixed in advance, or READY certifies nothing."""
    crit = config.criteria
    if crit.threshold is not None or crit.min_improvement is not None:
        return
    has_section = isinstance(data, dict) and "criteria" in data
    raise ConfigError(
        Problem(
            "no success criterion: set criteria.threshold (the value the tuned model must reach on the test set) "
            "and/or criteria.min_improvement (the gain it must show over the strongest baseline)",
            file=str(path),
            line=_line_of(data, ("criteria",)) if has_section else None,
            field="criteria.threshold",
            fix=f"add under criteria: threshold: <value of {crit.metric} the task needs> (and min_improvement: "
            "<gain>), decided before training; `tunerail init` writes an example",
        )
    )


def _locate_root_error(err: Any) -> Any:
    """A cross-field check on the whole config names its key first ("criteria.metric ..."): use it as the location."""
    if err["loc"]:
        return err
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    head = msg.split(" ", 1)[0]
    if "." in head and all(part.isidentifier() for part in head.split(".")):
        return {**err, "loc": tuple(head.split(".")), "msg": msg, "type": "value_error"}
    return err


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _explain(err: dict[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    found = err.get("input")
    text = err["msg"]
    if found is not None and not isinstance(found, (dict, list)):
        text += f" (found {found!r})"
    return text


def _fix_for(err: dict[str, Any], loc: list[str]) -> str | None:
    if err["type"] == "extra_forbidden":
        section = section_model(loc[:-1])
        if section is not None:
            import difflib

            close = difflib.get_close_matches(loc[-1], list(section.model_fields), n=1)
            allowed = ", ".join(k for k in section.model_fields if k != "source")
            return (f"did you mean '{close[0]}'? " if close else "") + f"allowed keys: {allowed}"
    if err["type"] == "literal_error":
        return f"use {err.get('ctx', {}).get('expected', 'one of the allowed values')}"
    return None


def section_model(loc: list[str]) -> type[BaseModel] | None:
    model: type[BaseModel] = TunerailConfig
    for key in loc:
        if key.isdigit():
            continue
        field = model.model_fields.get(key)
        if field is None:
            return None
        ann = field.annotation
        inner = getattr(ann, "__args__", (ann,))
        candidates = [a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)]
        if not candidates:
            return None
        model = candidates[0]
    return model


def _line_of(data: Any, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest key in ``loc`` that exists in the YAML."""
    line = None
    node = data
    for key in loc:
        lc = getattr(node, "lc", None)
        try:
            if lc is not None and isinstance(node, dict) and key in node:
                line = lc.key(key)[0] + 1
            elif lc is not None and isinstance(node, list) and isinstance(key, int) and key < len(node):
                line = lc.item(key)[0] + 1
            else:
                break
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
    return line
