"""The one package convention's one trick: a step package that can be called like its entry function.

Each step package's ``__init__`` re-exports its public names (the entry function from its
``recipe.py``) and ends with ``make_callable(__name__, entry)``. Why: ``import tunerail`` resolves
``tunerail.doctor`` lazily to the function (``tunerail/__init__.py``, so torch never loads), but
importing any submodule (``import tunerail.doctor.checks``) binds the attribute ``tunerail.doctor``
to the package instead. A callable package keeps ``tunerail.doctor(...)``, ``tunerail.split(...)``,
``tunerail.train(...)`` working either way, as the README's Python API shows. This is the only
place tunerail swaps a module's class; no package defines a lazy ``__getattr__``.
"""

from __future__ import annotations

import sys
import types
from typing import Any, Callable


def make_callable(package: str, entry: Callable[..., Any]) -> None:
    """Calling the module ``package`` calls ``entry`` (the step function it re-exports)."""

    class _CallablePackage(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return entry(*args, **kwargs)

    _CallablePackage.__call__.__doc__ = f"Call {entry.__module__}.{entry.__qualname__}."
    sys.modules[package].__class__ = _CallablePackage
