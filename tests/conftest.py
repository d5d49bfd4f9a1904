"""Shared fixtures: CA factories, a movable clock, the real ``tlsgate`` command, the store on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tlsgate import compiled
from tlsgate.ca import CertificateAuthority
from tlsgate.store import Store, open_store
from tlsgate.store.testing import postgres_server


def pytest_report_header() -> str:
    return f"tlsgate proxy core: {compiled.build()}"


def pytest_sessionstart(session: pytest.Session) -> None:
    """scripts/test runs the suite on each build and says which it meant: a wrong one stops the run."""
    expected = os.environ.get("TLSGATE_EXPECT_BUILD")
    if expected and compiled.build() != expected:
        raise pytest.UsageError(f"TLSGATE_EXPECT_BUILD={expected}, but the proxy core here is {compiled.build()}")


@dataclass
class FakeClock:
    """A clock tests move by hand."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def make_ca(tmp_path: Path) -> Callable[..., CertificateAuthority]:
    counter = iter(range(1000))

    def factory(**kwargs: object) -> CertificateAuthority:
        return CertificateAuthority.init(tmp_path / f"ca{next(counter)}", **kwargs)  # type: ignore[arg-type]

    return factory


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    stdout_bytes: bytes


@pytest.fixture
def tlsgate(tmp_path: Path) -> Callable[..., CliResult]:
    """Run the real ``tlsgate`` command with its own data directory."""
    data_dir = tmp_path / "data"

    def run(*args: str, env: dict[str, str] | None = None, check: bool = False) -> CliResult:
        full_env = {**os.environ, "TLSGATE_DATA_DIR": str(data_dir), "COLUMNS": "160", **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "tlsgate", *args], capture_output=True, env=full_env, timeout=120, check=False
        )
        result = CliResult(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(), proc.stdout)
        if check and proc.returncode != 0:
            raise AssertionError(f"tlsgate {' '.join(args)} failed: {result.stderr}")
        return result

    run.data_dir = data_dir  # type: ignore[attr-defined]
    return run


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each store test runs twice: on SQLite, and on a real PostgreSQL (see :mod:`tlsgate.store.testing`)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tlsgate.db'}"
        return
    server = postgres_server()
    url = server.create_database()
    yield url
    server.drop_database(url)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url)
    yield opened
    opened.dispose()
