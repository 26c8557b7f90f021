"""`tunerail select`: choose the base model on your own data, licence gated, before training."""

import sys
import types

from tunerail.select.recipe import CandidateResult, SelectResult, resolve_candidates, select

__all__ = ["CandidateResult", "SelectResult", "resolve_candidates", "select"]


class _CallableModule(types.ModuleType):
    """Importing this package binds it as ``tunerail.select``, over the lazy API function of that name;
    calling the package calls the function, so ``tunerail.select(config, ...)`` works either way."""

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return select(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
