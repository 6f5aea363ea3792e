"""ODBC test fixtures: driver checks, a SQLite database file and a PostgreSQL server on loopback.

A missing driver or server skips the test on a developer machine and fails it
under CI (environment CI=true), where .ci/run installs unixODBC, the SQLite ODBC
driver, psqlODBC and PostgreSQL.

PostgreSQL refuses to run as root. Under root the server runs as the ``postgres``
user through ``runuser``, and under any other user it runs as that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")

SQLITE_DRIVER = "SQLite3"
POSTGRES_DRIVER = "PostgreSQL Unicode"


def skip_or_fail(reason: str) -> None:
    """Skip the test on a developer machine, but fail it under CI, where everything must be installed."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: .ci/run installs it, so this is a failure)")
    pytest.skip(reason)


def require_pyodbc() -> Any:
    """Return the pyodbc module, or skip/fail when unixODBC or pyodbc is missing."""
    try:
        import pyodbc
    except ImportError as exc:
        skip_or_fail(f"pyodbc cannot be imported ({exc}): install unixodbc")
    return pyodbc


def require_driver(name: str) -> None:
    """Skip/fail unless unixODBC lists the ODBC driver ``name``."""
    pyodbc = require_pyodbc()
    if name not in pyodbc.drivers():
        skip_or_fail(f"ODBC driver {name!r} is not installed (have: {pyodbc.drivers()})")


# --- SQLite ------------------------------------------------------------------------


def sqlite_connection_string(path: Path) -> str:
    """Return a SQLite ODBC connection string for a database file."""
    return f"Driver={SQLITE_DRIVER};Database={path}"


# --- PostgreSQL --------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresServer:
    """A running throwaway PostgreSQL server on 127.0.0.1."""

    bin_dir: Path
    data_dir: Path
    port: int
    user: str
    password: str
    database: str

    def connection_string(self, database: str | None = None) -> str:
        """Return a psqlODBC connection string, with the password in braces because it contains ``;``."""
        return (
            f"Driver={{{POSTGRES_DRIVER}}};Server=127.0.0.1;Port={self.port};"
            f"Database={database or self.database};Uid={self.user};Pwd={{{self.password}}}"
        )

    def psql(self, sql: str, database: str | None = None) -> str:
        """Run one SQL command with psql over TCP and return its output."""
        result = subprocess.run(
            [str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
             "-d", database or self.database, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t", "-c", sql],
            env={**os.environ, "PGPASSWORD": self.password},
            capture_output=True, text=True, timeout=120, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout


def find_postgres_bin() -> Path | None:
    """Return the newest PostgreSQL server bin directory, or None."""
    override = os.environ.get("ROUTING_TEST_PG_BIN")
    candidates = [override] if override else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


def _free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_server_user(command: list[str], server_user: str | None) -> list[str]:
    """Prefix a command with runuser when the server runs as another user."""
    return ["runuser", "-u", server_user, "--", *command] if server_user else command


def _run(command: list[str], timeout: float = 120) -> None:
    """Run a setup command and raise RuntimeError with its output when it fails."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:6])} ... failed: {result.stdout[-2000:]} {result.stderr[-2000:]}")


@contextlib.contextmanager
def running_postgres(bin_dir: Path, database: str = "routing_test") -> Iterator[PostgresServer]:
    """Initialise a data directory in a new temporary folder, start the server, yield it, stop it.

    The folder is created directly under the system temporary directory because
    the ``postgres`` user cannot enter pytest's root-owned ``tmp_path`` folders.
    """
    server_user: str | None = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("running as root and no 'postgres' user exists to run PostgreSQL") from None
        server_user = "postgres"

    base = Path(tempfile.mkdtemp(prefix="routing-pg-"))
    data_dir = base / "data"
    password = f"pw;{secrets.token_hex(8)}"
    user = "routing"
    started = False
    try:
        (base / "pwfile").write_text(password + "\n", encoding="utf-8")
        if server_user:
            shutil.chown(base, server_user, server_user)
            shutil.chown(base / "pwfile", server_user, server_user)
        os.chmod(base, 0o700)

        _run(_as_server_user(
            [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", user, "-E", "UTF8", "--locale=C.UTF-8",
             "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={base / 'pwfile'}"],
            server_user,
        ))

        port = 0
        for _ in range(3):
            port = _free_port()
            options = (
                f"-p {port} -k {base} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                _run(_as_server_user(
                    [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-l", str(base / "server.log"),
                     "-w", "-t", "60", "-o", options, "start"],
                    server_user,
                ))
                started = True
                break
            except RuntimeError:
                continue  # the port was taken between the probe and the start
        if not started:
            log = (base / "server.log").read_text(errors="replace")[-2000:] if (base / "server.log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {log}")

        server = PostgresServer(bin_dir, data_dir, port, user, password, database)
        server.psql(f"CREATE DATABASE {database} ENCODING 'UTF8' TEMPLATE template0", database="postgres")
        yield server
    finally:
        if started:
            subprocess.run(
                _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"], server_user),
                capture_output=True, timeout=120, check=False,
            )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Session-wide PostgreSQL server on 127.0.0.1 with a free port, stopped at the end of the session."""
    require_driver(POSTGRES_DRIVER)
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        skip_or_fail("PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql")
    with running_postgres(bin_dir) as server:
        yield server
