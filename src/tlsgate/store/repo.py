"""Queries and writes the other packages share, so that SQL stays in the store.

Pure functions of a :class:`~sqlalchemy.orm.Session`; the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tlsgate.store.database import Store
from tlsgate.store.models import AuditEntry, CAVersionRecord, DoNotInspectHost

if TYPE_CHECKING:
    from tlsgate.ca import CertificateAuthority

__all__ = [
    "do_not_inspect_hosts",
    "hash_secret",
    "load_do_not_inspect_hosts",
    "new_secret",
    "record_audit",
    "replace_do_not_inspect_hosts",
    "sync_ca_versions",
]


def new_secret(prefix: str) -> str:
    """A bearer secret with a readable prefix (``tga_`` API, ``tgn_`` enrollment, ``tgc_`` endpoint credential)."""
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """Secrets are 256-bit random, so a plain SHA-256 is a safe lookup key (passwords use argon2 instead)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def record_audit(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    target: str = "",
    detail: dict[str, Any] | None = None,
    source: str = "",
) -> AuditEntry:
    entry = AuditEntry(at=at, actor=actor, action=action, target=target[:255], detail=detail or {}, source=source[:64])
    session.add(entry)
    return entry


def do_not_inspect_hosts(session: Session) -> list[str]:
    """The do-not-inspect host list, sorted; the proxy's policy polls this to pick up changes without a restart."""
    return list(session.scalars(select(DoNotInspectHost.host).order_by(DoNotInspectHost.host)))


def load_do_not_inspect_hosts(store: Store) -> tuple[str, ...]:
    """The same list in its own short read transaction, for a poller outside any request."""
    with store.sessions() as session:
        return tuple(do_not_inspect_hosts(session))


def sync_ca_versions(session: Session, ca: CertificateAuthority, now: datetime) -> Sequence[CAVersionRecord]:
    """Mirror the CA directory's versions (public certificates and metadata only) into the store.

    Idempotent: versions are keyed by their SHA-256 fingerprint; the "current" flags follow the CA.
    """
    existing = {r.sha256: r for r in session.scalars(select(CAVersionRecord))}
    current_root = ca.root.current.sha256
    seen: set[str] = set()
    for identity in ca.identities:
        for version in identity.versions:
            record = existing.get(version.sha256)
            if record is None:
                record = CAVersionRecord(
                    identity_id=version.identity_id,
                    role=version.role.value,
                    number=version.number,
                    subject=version.subject,
                    key_type=version.key_type,
                    serial=version.serial_hex,
                    sha256=version.sha256,
                    sha1=version.sha1,
                    spki_sha256=version.spki_sha256,
                    not_before=version.not_before,
                    not_after=version.not_after,
                    certificate_pem=version.pem.decode("ascii"),
                )
                session.add(record)
            record.is_current = ca.is_current(version)
            record.is_current_root = version.sha256 == current_root
            record.synced_at = now
            seen.add(version.sha256)
    stale = [sha for sha in existing if sha not in seen]
    if stale:  # a CA directory replaced wholesale: keep the history, drop the "current" marks
        session.execute(
            update(CAVersionRecord)
            .where(CAVersionRecord.sha256.in_(stale))
            .values(is_current=False, is_current_root=False)
        )
    session.flush()
    return list(session.scalars(select(CAVersionRecord).order_by(CAVersionRecord.not_before, CAVersionRecord.id)))


def replace_do_not_inspect_hosts(
    session: Session, hosts: Iterable[str], *, actor: str, now: datetime
) -> tuple[list[str], list[str]]:
    """Set the list to exactly ``hosts`` (already normalised); returns (added, removed)."""
    wanted = dict.fromkeys(hosts)
    current = {h.host: h for h in session.scalars(select(DoNotInspectHost))}
    added = [h for h in wanted if h not in current]
    removed = [h for h in current if h not in wanted]
    for host in removed:
        session.delete(current[host])
    for host in added:
        session.add(DoNotInspectHost(host=host, comment="", created_at=now, created_by=actor))
    session.flush()
    return added, removed
