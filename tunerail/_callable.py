"""Let a step package be called like its entry function: ``tunerail.doctor(...)``.

``import tunerail.doctor.checks`` sets the attribute ``tunerail.doctor`` to the package, which
would shadow the lazily resolved function of the same name; making the package callable keeps
``tunerail.doctor(...)``, ``tunerail.split(...)`` and ``tunerail.train(...)`` working either way.
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import Any


def make_callable(package: str, target: str) -> None:
    """Calling ``package`` calls ``target`` ("module:function"), imported on first call."""
    module_name, func_name = target.split(":")

    class _CallablePackage(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return getattr(import_module(module_name), func_name)(*args, **kwargs)

    _CallablePackage.__call__.__doc__ = f"Call {target.replace(':', '.')}."
    sys.modules[package].__class__ = _CallablePackage
