"""tlsgate.store: SQLAlchemy models and Alembic migrations — one schema for SQLite (default, WAL) and PostgreSQL.

Never imported by ``tlsgate.policy`` or ``tlsgate.ca``. CA private keys never come here.
"""

from tlsgate.store.database import (
    DATABASE_FILE,
    SchemaTooNewError,
    Store,
    StoreUnavailableError,
    default_database_url,
    head_revision,
    make_engine,
    migrate,
    normalize_url,
    open_store,
)
from tlsgate.store.models import (
    AdminAccount,
    AdminSession,
    ApiToken,
    AuditEntry,
    Base,
    CAVersionRecord,
    CheckIn,
    DoNotInspectHost,
    Endpoint,
    EnrollmentToken,
    LoginThrottle,
    Notification,
    StatusPost,
)
from tlsgate.store.repo import (
    do_not_inspect_hosts,
    hash_secret,
    load_do_not_inspect_hosts,
    new_secret,
    record_audit,
    replace_do_not_inspect_hosts,
    sync_ca_versions,
)

__all__ = [
    "DATABASE_FILE",
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
    "SchemaTooNewError",
    "StatusPost",
    "Store",
    "StoreUnavailableError",
    "default_database_url",
    "do_not_inspect_hosts",
    "hash_secret",
    "head_revision",
    "load_do_not_inspect_hosts",
    "make_engine",
    "migrate",
    "new_secret",
    "normalize_url",
    "open_store",
    "record_audit",
    "replace_do_not_inspect_hosts",
    "sync_ca_versions",
]
