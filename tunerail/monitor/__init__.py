"""`tunerail monitor`: does production traffic still look like the data the verdict was earned on?

The entry function ``monitor(traffic, reference=RUN_DIR)`` and what it tests are in ``recipe.py``.
"""

from tunerail._callable import make_callable
from tunerail.monitor.recipe import MonitorResult, monitor

__all__ = ["MonitorResult", "monitor"]

make_callable(__name__, monitor)
