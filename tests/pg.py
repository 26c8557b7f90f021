"""A throwaway PostgreSQL server for tests: initdb into a temp folder, a free loopback port, stopped at the end.

The server refuses to run as root, so as root it runs as the ``postgres`` user (``runuser``).
When no server can be started the tests that need it are skipped with the reason, except
under ``CI=1``, where that is a failure (CI must test the many-machine path for real).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest


def _bin_dir() -> Path | None:
    """The server's own bin folder (initdb, pg_ctl, createdb together); PATH may hold only a pg_ctl link."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "1":
        pytest.fail(f"PostgreSQL needed under CI=1 but {reason}")
    pytest.skip(f"needs a PostgreSQL server: {reason}")


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    return [runuser, "-u", "postgres", "--", *cmd] if runuser else ["su", "postgres", "-c", " ".join(cmd)]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql://postgres@127.0.0.1:<port>/tunerail_test`` on a fresh server (session-wide)."""
    bindir = _bin_dir()
    if bindir is None:
        _unavailable("no pg_ctl/initdb found (apt-get install postgresql)")
    if os.geteuid() == 0:
        try:
            import pwd

            user = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no `postgres` user to run the server as")
    root = Path(tempfile.mkdtemp(prefix="tunerail-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        os.chown(root, user.pw_uid, user.pw_gid)
    port = _free_port()

    def run(cmd: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(_as_server_user(cmd), capture_output=True, text=True, timeout=120)

    init = run([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"])
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        _unavailable(f"initdb failed: {init.stderr.strip()[-300:]}")
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
    start = run([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "server.log"), "-w", "-t", "60", "start"])
    if start.returncode != 0:
        log = (root / "server.log").read_text(errors="replace")[-300:] if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        _unavailable(f"pg_ctl start failed: {start.stderr.strip()[-300:]} {log}")
    try:
        made = run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "tunerail_test"])
        if made.returncode != 0:
            _unavailable(f"createdb failed: {made.stderr.strip()[-300:]}")
        yield f"postgresql://postgres@127.0.0.1:{port}/tunerail_test"
    finally:
        run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)
