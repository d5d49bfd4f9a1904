"""Opening the store: engines for SQLite (default, WAL) and PostgreSQL (psycopg 3), and migrations on open.

``open_store(url)`` builds the engine, refuses a database whose schema is newer than this code,
runs the Alembic migrations shipped in :mod:`tlsgate.store.migrations` up to head, and returns a
:class:`Store`. Nothing here runs at import time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from tlsgate.errors import ConfigError

__all__ = [
    "DATABASE_FILE",
    "SchemaTooNewError",
    "Store",
    "StoreUnavailableError",
    "default_database_url",
    "head_revision",
    "make_engine",
    "migrate",
    "normalize_url",
    "open_store",
]

DATABASE_FILE = "tlsgate.db"
_MIGRATIONS = Path(__file__).with_name("migrations")


class SchemaTooNewError(ConfigError):
    """The database was migrated by a newer tlsgate than this one."""


class StoreUnavailableError(ConfigError):
    """The database cannot be reached or opened."""


def default_database_url(data_dir: Path) -> str:
    """The default store: one SQLite file in the data directory."""
    return f"sqlite:///{(data_dir / DATABASE_FILE).expanduser()}"


def normalize_url(url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` and use psycopg 3 for both."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(normalize_url(url))
    except ArgumentError as exc:
        raise ConfigError(f"bad database URL: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        memory = database in ("", ":memory:")
        if not memory:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 15}}
        if memory:
            kwargs["poolclass"] = StaticPool
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise ConfigError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")
    return create_engine(parsed, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the proxy workers read while the portal writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships its migrations
        raise ConfigError("tlsgate's database migrations are missing")
    return head


def migrate(engine: Engine) -> str:
    """Bring the schema to this code's head; refuse a database from a newer tlsgate. Returns the revision."""
    config = _alembic_config()
    script = ScriptDirectory.from_config(config)
    try:
        with engine.begin() as connection:
            current = MigrationContext.configure(connection).get_current_heads()
            for revision in current:
                try:
                    known = script.get_revision(revision)
                except CommandError:
                    known = None
                if known is None:
                    raise SchemaTooNewError(
                        f"the database schema is at revision {revision}, newer than this tlsgate knows "
                        f"(up to {script.get_current_head()}); upgrade tlsgate or point it at another database"
                    )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as exc:
        raise StoreUnavailableError(f"cannot open the database {engine.url.render_as_string()}: {exc.orig}") from None
    return head_revision()


@dataclass(frozen=True, slots=True)
class Store:
    """A migrated database: the engine and a session factory."""

    engine: Engine
    sessions: sessionmaker[Session]

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on error."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(url: str, *, run_migrations: bool = True) -> Store:
    engine = make_engine(url)
    if run_migrations:
        try:
            migrate(engine)
        except BaseException:
            engine.dispose()
            raise
    return Store(engine, sessionmaker(engine, expire_on_commit=False))
