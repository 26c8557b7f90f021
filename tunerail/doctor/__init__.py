"""`tunerail doctor`: audit a dataset before any compute is spent.

The entry function ``doctor()`` (in ``recipe.py``) loads the records, runs every registered
check (``registry.py``) and returns a ``DoctorResult``; the CLI only prints and writes it.
"""

from tunerail._callable import make_callable
from tunerail.doctor.recipe import DoctorResult, SkippedCheck, doctor

__all__ = ["DoctorResult", "SkippedCheck", "doctor"]

make_callable(__name__, doctor)
