"""Where the study lives: SQLite in the run folder, or a shared database for many workers.

Heartbeats and Optuna's ``RetryHeartbeatStaleTrialCallback`` (formerly ``RetryFailedTrialCallback``): a worker that dies (SIGKILL, lost
machine) stops beating, the next worker to start a trial marks its trial FAIL after the grace
period and enqueues a copy with the same parameters. Only COMPLETE and PRUNED trials count
towards ``sweep.trials``, so no trial is counted twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunerail.errors import Problem, TunerailError

SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg2", "postgresql+psycopg", "mysql", "mysql+pymysql")


def default_url(out_dir: Path) -> str:
    return f"sqlite:///{(Path(out_dir) / 'sweep.db').resolve()}"


def masked(url: str) -> str:
    """The URL with its password hidden, for messages, reports and sweep.json."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL: show only its scheme
        return url.split("://", 1)[0] + "://..."


def open_storage(url: str, *, heartbeat_seconds: int, max_retry: int = 2) -> Any:
    """An Optuna ``RDBStorage`` with heartbeats; a bad URL or an unreachable server is a clear error."""
    import warnings

    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    fix = "use sqlite:///path/sweep.db or postgresql://user:password@host:5432/dbname"
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in SCHEMES:
        raise TunerailError(Problem(f"unsupported sweep storage URL {masked(url)!r}", field="--storage", fix=fix))
    if scheme == "sqlite":
        Path(url.split(":///", 1)[-1]).parent.mkdir(parents=True, exist_ok=True)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if scheme.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna; we rely on them knowingly
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_seconds,
                grace_period=2 * heartbeat_seconds,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
            )
    except ImportError as exc:
        raise TunerailError(
            Problem(
                f"the driver for {scheme} is not installed ({exc})", field="--storage", fix="pip install 'psycopg[binary]' (PostgreSQL)"
            )
        ) from None
    except Exception as exc:  # noqa: BLE001 - sqlalchemy raises many types; all mean "cannot use this storage"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TunerailError(
            Problem(
                f"cannot open the sweep storage {masked(url)}: {reason}",
                field="--storage",
                fix=fix + "; check that the server is running and the database exists",
            )
        ) from None
