"""A throwaway PostgreSQL server for tests (this package's and later issues'), and a database per test.

``postgres_server()`` uses ``$TLSGATE_TEST_POSTGRES_URL`` when set (a role that may CREATE DATABASE);
otherwise it starts a private cluster from Debian's ``postgresql`` binaries in a temporary directory,
listening on 127.0.0.1 only, on a free port, and stops it when the process exits. Missing binaries are
an error with a clear message, never a silent skip. Running as root, the cluster runs as ``postgres``.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PostgresServer", "PostgresUnavailableError", "postgres_server"]

ENV_URL = "TLSGATE_TEST_POSTGRES_URL"


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL to test against."""


class PostgresServer:
    def __init__(self, admin_url: str, data_dir: Path | None = None, run_as: list[str] | None = None) -> None:
        self.admin_url = admin_url  # postgresql+psycopg://user@host:port/postgres
        self._data_dir = data_dir
        self._run_as = run_as or []

    def create_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = "tlsgate_test_" + secrets.token_hex(6)
        with psycopg.connect(self._libpq_url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.admin_url.rsplit("/", 1)[0] + "/" + name

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self._libpq_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _libpq_url(self) -> str:
        return self.admin_url.replace("postgresql+psycopg://", "postgresql://", 1)

    def stop(self) -> None:
        if self._data_dir is None:
            return
        bindir = _bindir()
        subprocess.run(
            [*self._run_as, str(bindir / "pg_ctl"), "-D", str(self._data_dir / "data"), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self._data_dir, ignore_errors=True)
        self._data_dir = None


_server: PostgresServer | None = None


def postgres_server() -> PostgresServer:
    """The process-wide test server, started on first use."""
    global _server
    if _server is None:
        url = os.environ.get(ENV_URL)
        if url:
            from tlsgate.store.database import normalize_url

            _server = PostgresServer(normalize_url(url))
        else:
            _server = _start_cluster()
            atexit.register(_server.stop)
    return _server


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresUnavailableError(
        "PostgreSQL server binaries not found: install them (apt-get install -y postgresql) "
        f"or set {ENV_URL} to a server where the user may CREATE DATABASE"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_cluster() -> PostgresServer:
    bindir = _bindir()
    base = Path(tempfile.mkdtemp(prefix="tlsgate-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root; run the cluster as the postgres system user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailableError("running as root and there is no 'postgres' user") from None
        os.chown(base, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data = base / "data"
    port = _free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*run_as, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PostgresUnavailableError(f"{Path(args[0]).name} failed: {done.stderr.strip() or done.stdout.strip()}")

    run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "tlsgate", "-E", "UTF8", "--no-sync")
    options = f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(base / "log"), "-o", options, "start")
    return PostgresServer(f"postgresql+psycopg://tlsgate@127.0.0.1:{port}/postgres", base, run_as)
