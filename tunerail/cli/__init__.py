"""The `tunerail` command line: parse, call the step function, render, set the exit code.

One module per command group (``tunerail/cli/<group>.py``) registers its commands on the shared
``app``. Exit codes: 0 ok, 1 findings at or above ``--fail-on`` (or a NOT READY verdict), 2 could
not run. Summaries go to stderr; no command imports torch before it needs it.
"""

from __future__ import annotations

import sys
from importlib import import_module

from tunerail.cli._common import app

# Command groups in workflow order (the order `tunerail --help` lists them).
COMMAND_MODULES = ("project", "doctor", "split", "select", "store", "train", "sweep", "eval", "review", "run", "export", "serve", "monitor")
for _module in COMMAND_MODULES:
    import_module(f"tunerail.cli.{_module}")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (testable without a subprocess)."""
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:  # noqa: BLE001 - outside a command (parsing, import): still one line, exit 2
        from tunerail.cli._common import report_unexpected

        report_unexpected(exc, [])
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
