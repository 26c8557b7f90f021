"""`tunerail monitor`: does production traffic still look like the data the verdict was earned on?

``monitor(traffic, reference=RUN_DIR)`` (``recipe.py``) cuts the traffic log into windows and compares each with
the run's training split (the frozen test set is the "no drift" control where a test needs
one): embedding MMD and a cross-fitted domain classifier, token length, language mix, the share
of out-of-scope requests (with examples), the predicted-label distribution, answers matching no
label, refusal and empty-answer rates, answer length; the doctor's PII and format checks on the
logged prompts. All p-values of all windows form one family held at ``monitor.alpha``
(Bonferroni by default, Holm optional). Writes ``monitor.json`` and ``report.html``; an alert
(any significant test) is exit 1 in the CLI.
"""

from tunerail._callable import make_callable
from tunerail.monitor.recipe import MonitorResult, monitor

__all__ = ["MonitorResult", "monitor"]

make_callable(__name__, monitor)
