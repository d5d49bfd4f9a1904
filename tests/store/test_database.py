from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from tlsgate.errors import ConfigError
from tlsgate.store import (
    AdminAccount,
    AuditEntry,
    CheckIn,
    Endpoint,
    Notification,
    SchemaTooNewError,
    Store,
    head_revision,
    make_engine,
    migrate,
    normalize_url,
    open_store,
)

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)

TABLES = {
    "admin_accounts",
    "admin_sessions",
    "api_tokens",
    "audit_log",
    "ca_versions",
    "checkins",
    "do_not_inspect_hosts",
    "endpoints",
    "enrollment_tokens",
    "login_throttle",
    "notifications",
    "status_posts",
}


def test_migrations_create_every_table(store: Store) -> None:
    names = set(inspect(store.engine).get_table_names())
    assert names >= TABLES | {"alembic_version"}
    with store.engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar_one() == head_revision()


def test_migrate_twice_is_a_no_op(store: Store) -> None:
    assert migrate(store.engine) == head_revision()


def test_schema_matches_models(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from tlsgate.store import Base

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_newer_database_is_refused(store: Store, database_url: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("update alembic_version set version_num = '9999_from_the_future'"))
    with pytest.raises(SchemaTooNewError, match="newer than this tlsgate"):
        open_store(database_url)


def test_datetimes_come_back_aware_utc(store: Store) -> None:
    with store.session() as session:
        session.add(
            AdminAccount(
                username="alice", password_hash="x", created_at=NOW, password_changed_at=NOW, last_login_at=None
            )
        )
    with store.session() as session:
        admin = session.scalars(select(AdminAccount)).one()
        assert admin.created_at == NOW
        assert admin.created_at.tzinfo is not None
        assert admin.created_at.utcoffset() == timedelta(0)


def test_naive_datetime_is_rejected(store: Store) -> None:
    with store.sessions() as session:
        session.add(AuditEntry(at=datetime(2030, 1, 1), actor="a", action="b"))
        with pytest.raises(Exception, match="naive datetime"):
            session.flush()


def test_notifications_are_unique_per_item_channel_recipient(store: Store) -> None:
    with store.session() as session:
        session.add(Notification(plan_item="t-30d", channel="email", recipient="a@example.test", created_at=NOW))
    with pytest.raises(IntegrityError), store.session() as session:
        session.add(Notification(plan_item="t-30d", channel="email", recipient="a@example.test", created_at=NOW))
    with store.session() as session:
        session.add(Notification(plan_item="t-30d", channel="webhook", recipient="a@example.test", created_at=NOW))


def test_deleting_an_endpoint_deletes_its_checkins(store: Store) -> None:
    with store.session() as session:
        ep = Endpoint(public_id="e1", hostname="h", credential_hash="c" * 64, enrolled_at=NOW, trusted=[])
        session.add(ep)
        session.flush()
        session.add(CheckIn(endpoint_id=ep.id, at=NOW, trusted=[{"subject": "CN=x"}], warnings=[]))
    with store.session() as session:
        assert session.scalars(select(CheckIn)).one().trusted == [{"subject": "CN=x"}]
        session.delete(session.scalars(select(Endpoint)).one())
    with store.session() as session:
        assert session.scalars(select(CheckIn)).all() == []


def test_sqlite_uses_wal(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("pragma journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("pragma foreign_keys")).scalar_one() == 1
    engine.dispose()


def test_urls() -> None:
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(ConfigError):
        make_engine("mysql://u@h/db")
    with pytest.raises(ConfigError):
        make_engine("not a url")
