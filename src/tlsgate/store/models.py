"""The tables of tlsgate's store: one schema for SQLite and PostgreSQL.

Rules: every timestamp is timezone-aware UTC (stored through :class:`UTCDateTime`, which
SQLite would otherwise hand back naive); secrets (passwords, tokens, endpoint credentials,
session ids) are stored only as hashes; CA private keys never come here — only public
certificates and their metadata, synced from the CA directory. These classes are storage,
not API schemas: the portal maps them to its own response models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "AdminAccount",
    "AdminSession",
    "ApiToken",
    "AuditEntry",
    "Base",
    "CAVersionRecord",
    "CheckIn",
    "DoNotInspectHost",
    "Endpoint",
    "EnrollmentToken",
    "LoginThrottle",
    "Notification",
    "StatusPost",
    "UTCDateTime",
]

# Stable constraint names so that migrations are the same on both databases.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime in, an aware UTC datetime out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use tlsgate.clock")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012


class AdminAccount(Base):
    __tablename__ = "admin_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    password_changed_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]


class LoginThrottle(Base):
    """Failed sign-ins per user name (known or not, so probing names reveals nothing)."""

    __tablename__ = "login_throttle"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    last_failure_at: Mapped[datetime | None]


class AdminSession(Base):
    """Server-side sessions: the cookie holds a random id, the table its SHA-256."""

    __tablename__ = "admin_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admin_accounts.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    expiry_alert_dismissed: Mapped[bool] = mapped_column(Boolean, default=False)

    admin: Mapped[AdminAccount] = relationship()


class ApiToken(Base):
    """Bearer tokens for the admin JSON API."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class EnrollmentToken(Base):
    """Tokens an agent presents once to enroll; each use makes one endpoint."""

    __tablename__ = "enrollment_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    max_uses: Mapped[int | None]
    uses: Mapped[int] = mapped_column(Integer, default=0)


class CAVersionRecord(Base):
    """One certificate of a CA identity, as the portal shows it. Public material only."""

    __tablename__ = "ca_versions"
    __table_args__ = (UniqueConstraint("identity_id", "number", name="uq_ca_versions_identity_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    identity_id: Mapped[str] = mapped_column(String(64), index=True)  # SPKI SHA-256 of the identity
    role: Mapped[str] = mapped_column(String(16))
    number: Mapped[int]
    subject: Mapped[str] = mapped_column(Text)
    key_type: Mapped[str] = mapped_column(String(32))
    serial: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    sha1: Mapped[str] = mapped_column(String(40))
    spki_sha256: Mapped[str] = mapped_column(String(64))
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    certificate_pem: Mapped[str] = mapped_column(Text)
    is_current: Mapped[bool] = mapped_column(Boolean, default=False)
    is_current_root: Mapped[bool] = mapped_column(Boolean, default=False)
    synced_at: Mapped[datetime]


class Endpoint(Base):
    __tablename__ = "endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(36), unique=True)
    hostname: Mapped[str] = mapped_column(String(255))
    os: Mapped[str] = mapped_column(String(128), default="")
    agent_version: Mapped[str] = mapped_column(String(64), default="")
    credential_hash: Mapped[str] = mapped_column(String(64), unique=True)
    enrollment_token_id: Mapped[int | None] = mapped_column(ForeignKey("enrollment_tokens.id", ondelete="SET NULL"))
    enrolled_at: Mapped[datetime]
    last_checkin_at: Mapped[datetime | None]
    # What the last check-in reported as trusted: [{"subject", "spki_sha256", "not_after", "sha256"?, "store"?}]
    trusted: Mapped[list[Any]] = mapped_column(JSON, default=list)

    checkins: Mapped[list[CheckIn]] = relationship(
        back_populates="endpoint", cascade="all, delete-orphan", passive_deletes=True, order_by="CheckIn.id"
    )


class CheckIn(Base):
    __tablename__ = "checkins"

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    agent_version: Mapped[str] = mapped_column(String(64), default="")
    os: Mapped[str] = mapped_column(String(128), default="")
    trusted: Mapped[list[Any]] = mapped_column(JSON, default=list)
    warnings: Mapped[list[Any]] = mapped_column(JSON, default=list)

    endpoint: Mapped[Endpoint] = relationship(back_populates="checkins")


class StatusPost(Base):
    __tablename__ = "status_posts"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), default="announcement")  # announcement, reminder, incident
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))


class Notification(Base):
    """One delivery of one item of the expiry communications plan; the unique key makes it exactly once."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("plan_item", "channel", "recipient", name="uq_notifications_item_channel_recipient"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_item: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(320))
    #: sending (claimed), sent, failed (retried at next_attempt_at), gave-up, cancelled (the plan changed),
    #: superseded (a later item was due first), unknown (the sender died mid-send: never sent again)
    state: Mapped[str] = mapped_column(String(16), default="sending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    plan_key: Mapped[str] = mapped_column(String(64), default="", index=True)  # root identity + expiry
    due_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    subject: Mapped[str] = mapped_column(String(300), default="")


class AuditEntry(Base):
    """Who did what, when: every admin action, from the web UI, the API or the CLI."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(64), default="")


class DoNotInspectHost(Base):
    """Hosts whose TLS the proxy splices instead of intercepting (banking, pinned apps, …)."""

    __tablename__ = "do_not_inspect_hosts"

    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(String(255), unique=True)
    comment: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
