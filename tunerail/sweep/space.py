"""The search space: defaults by training method, each dimension overridable or fixable.

Dimensions are named by their path under ``train`` (``learning_rate``, ``lora.r``...), so a
best setting is written back as a plain ``train:`` overlay (``best.yaml``). Spec forms in
``sweep.space``:

- ``{low: 1e-5, high: 1e-3, log: true}`` (``step`` for a grid; ints stay ints): a range;
- ``[4, 8, 16]``: a choice;
- a scalar (``batch_size: 8``): fixed, not searched;
- ``null``: not searched, the ``train`` value is used.

The seed is never a dimension: a sweep that searched it would pick the luckiest seed and
report it as a better setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunerail.errors import ConfigError, Problem

# What the sweep may change, each with its default spec for LoRA-type methods ({lr} = the
# method's default learning rate, searched a decade each side on a log scale).
SEARCHABLE = ("learning_rate", "epochs", "batch_size", "lora.r", "lora.alpha", "lora.variant", "warmup_ratio", "replay_ratio")
NEVER = ("seed",)


@dataclass(frozen=True)
class Dimension:
    """One searched (or fixed) hyperparameter."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    fixed: Any = None
    integer: bool = False

    @property
    def searched(self) -> bool:
        return self.fixed is None

    def suggest(self, trial: Any) -> Any:
        """Ask an Optuna trial for this dimension's value."""
        if not self.searched:
            return self.fixed
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        assert self.low is not None and self.high is not None  # a searched range has both ends (checked at load)
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)

    def describe(self) -> dict[str, Any]:
        if not self.searched:
            return {"fixed": self.fixed}
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log, "step": self.step, "int": self.integer}


def default_space(method: str, train: Any) -> dict[str, Dimension]:
    """Defaults by method: learning rate log-uniform around the method's default, then the rest.

    ``full`` fine-tuning has no LoRA dimensions; epochs range from 1 to the configured upper
    bound (early stopping still ends trials sooner).
    """
    from tunerail.train.lint import LR_DEFAULT

    lr = LR_DEFAULT[method]
    top_epochs = max(1, int(round(train.epochs)))
    space = {
        "learning_rate": Dimension("learning_rate", low=lr / 10, high=lr * 10, log=True),
        "epochs": Dimension("epochs", low=1, high=max(2, top_epochs), integer=True),
        "batch_size": Dimension("batch_size", choices=(4, 8, 16)),
        "warmup_ratio": Dimension("warmup_ratio", low=0.0, high=0.2),
        "replay_ratio": Dimension("replay_ratio", low=0.0, high=0.2),
    }
    if method != "full":
        space["lora.r"] = Dimension("lora.r", choices=(8, 16, 32))
        space["lora.alpha"] = Dimension("lora.alpha", choices=(16, 32, 64))
        space["lora.variant"] = Dimension("lora.variant", choices=("lora", "dora", "rslora"))  # the PEFT method, cost measured per trial
    return space


def build_space(method: str, train: Any, overrides: dict[str, Any]) -> dict[str, Dimension]:
    """The default space with ``sweep.space`` applied; every bad entry reported at once."""
    space = default_space(method, train)
    problems: list[Problem] = []
    for name, spec in overrides.items():
        field = f"sweep.space.{name}"
        if name in NEVER:
            problems.append(
                Problem(
                    "the seed is never searched (a sweep would pick the luckiest seed)",
                    field=field,
                    fix="remove it from sweep.space; set train.seed to fix the seed",
                )
            )
            continue
        if name not in SEARCHABLE:
            problems.append(Problem(f"{name!r} is not a searchable dimension", field=field, fix=f"searchable: {', '.join(SEARCHABLE)}"))
            continue
        if method == "full" and name.startswith("lora."):
            problems.append(
                Problem("LoRA dimensions do not apply to train.method: full", field=field, fix="remove it, or use train.method: lora")
            )
            continue
        try:
            dim = _parse(name, spec)
        except ValueError as exc:
            problems.append(
                Problem(str(exc), field=field, fix="use {low: .., high: .., log: true}, a list of choices, a fixed value, or null")
            )
            continue
        if dim is None:
            space.pop(name, None)
        else:
            space[name] = dim
    if problems:
        raise ConfigError(problems)
    return space


def _parse(name: str, spec: Any) -> Dimension | None:
    if spec is None:
        return None
    if isinstance(spec, list):
        if not spec:
            raise ValueError("an empty list of choices")
        return Dimension(name, choices=tuple(spec))
    if isinstance(spec, dict):
        unknown = set(spec) - {"low", "high", "log", "step"}
        if unknown or "low" not in spec or "high" not in spec:
            raise ValueError(f"a range needs low and high (and optionally log, step); found {sorted(spec)}")
        low, high = spec["low"], spec["high"]
        if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or low > high:
            raise ValueError(f"low must be a number not above high (found {low!r}, {high!r})")
        if spec.get("log") and low <= 0:
            raise ValueError("a log range needs low > 0")
        integer = isinstance(low, int) and isinstance(high, int) and not isinstance(low, bool) and name != "learning_rate"
        return Dimension(name, low=low, high=high, log=bool(spec.get("log", False)), step=spec.get("step"), integer=integer)
    if isinstance(spec, (int, float, str)) and not isinstance(spec, bool):
        return Dimension(name, fixed=spec)
    raise ValueError(f"cannot read {spec!r} as a range, choices or fixed value")


def suggest(trial: Any, space: dict[str, Dimension]) -> dict[str, Any]:
    """One trial's setting (fixed values included)."""
    return {name: dim.suggest(trial) for name, dim in space.items()}


def apply(config: Any, params: dict[str, Any]) -> Any:
    """A copy of ``config`` with ``params`` set under ``train`` (validated like the YAML)."""
    from pydantic import ValidationError

    from tunerail.config import TunerailConfig

    data = config.model_dump(mode="json")
    for name, value in params.items():
        node = data["train"]
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        out = TunerailConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            [Problem(e["msg"], field="sweep.space." + ".".join(str(p) for p in e["loc"][1:])) for e in exc.errors()]
        ) from None
    out.source = config.source
    return out


def overlay(params: dict[str, Any]) -> dict[str, Any]:
    """``{train: {...}}`` nested as in tunerail.yaml: the content of best.yaml."""
    train: dict[str, Any] = {}
    for name, value in params.items():
        node = train
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return {"train": train}


def load_overlay(path: str | Path) -> dict[str, Any]:
    """best.yaml back into ``{dimension: value}`` (dotted names), checked against the searchable set."""
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(Path(path).read_text(encoding="utf-8")) or {}
    train = data.get("train") if isinstance(data, dict) else None
    if not isinstance(train, dict):
        raise ConfigError(Problem("a sweep overlay holds one `train:` mapping", file=str(path), fix="re-run `tunerail sweep`"))
    flat: dict[str, Any] = {}
    for key, value in train.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    unknown = sorted(set(flat) - set(SEARCHABLE))
    if unknown:
        raise ConfigError(
            Problem(
                f"{unknown[0]!r} is not a sweep dimension",
                file=str(path),
                field=f"train.{unknown[0]}",
                fix="re-run `tunerail sweep` to write a fresh best.yaml",
            )
        )
    return flat
