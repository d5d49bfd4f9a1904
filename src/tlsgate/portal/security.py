"""Admin authentication: argon2 passwords, server-side sessions, CSRF tokens, sign-in lock-out.

Rules: passwords only as argon2id hashes; the session cookie is a random id whose SHA-256 is the
table key, so a database leak yields no usable session; every state-changing form carries the
session's CSRF token (the sign-in form a double-submit cookie); after ``lockout_failures``
failures in a row a user name — known or not — is locked for ``lockout_minutes``.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tlsgate.portal.settings import PortalSettings
from tlsgate.store import AdminAccount, AdminSession, LoginThrottle, hash_secret, record_audit

__all__ = [
    "SESSION_COOKIE",
    "SignIn",
    "authenticate",
    "check_csrf",
    "create_admin",
    "end_session",
    "generate_password",
    "hash_password",
    "load_session",
    "set_password",
    "start_session",
]

SESSION_COOKIE = "tlsgate_session"
LOGIN_CSRF_COOKIE = "tlsgate_login_csrf"
MIN_PASSWORD_LENGTH = 12
_hasher = PasswordHasher()
# Verified when the user name is unknown, so that the answer takes as long either way.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def check_new_password(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"use at least {MIN_PASSWORD_LENGTH} characters"
    return None


def create_admin(session: Session, username: str, password: str, now: datetime, *, must_change: bool) -> AdminAccount:
    admin = AdminAccount(
        username=username,
        password_hash=hash_password(password),
        must_change_password=must_change,
        created_at=now,
        password_changed_at=now,
        last_login_at=None,
    )
    session.add(admin)
    session.flush()
    return admin


def set_password(session: Session, admin: AdminAccount, password: str, now: datetime, *, must_change: bool) -> None:
    admin.password_hash = hash_password(password)
    admin.password_changed_at = now
    admin.must_change_password = must_change
    session.execute(delete(AdminSession).where(AdminSession.admin_id == admin.id))  # sign out everywhere
    session.execute(delete(LoginThrottle).where(LoginThrottle.username == admin.username))


@dataclass(frozen=True, slots=True)
class SignIn:
    admin: AdminAccount | None
    error: str | None


def authenticate(session: Session, settings: PortalSettings, username: str, password: str, source: str) -> SignIn:
    now = settings.clock()
    key = username.strip().casefold()[:64]
    throttle = session.get(LoginThrottle, key)
    if throttle is not None and throttle.locked_until is not None and throttle.locked_until > now:
        minutes = max(1, int((throttle.locked_until - now).total_seconds() // 60) + 1)
        record_audit(session, at=now, actor=key, action="sign-in.locked", source=source)
        return SignIn(None, f"Too many failed sign-ins. Try again in {minutes} minute(s).")
    admin = session.scalars(select(AdminAccount).where(AdminAccount.username == key)).one_or_none()
    ok = verify_password(admin.password_hash if admin else _DUMMY_HASH, password) and admin is not None
    if not ok:
        if throttle is None:
            throttle = LoginThrottle(username=key, failures=0)
            session.add(throttle)
        throttle.failures = (throttle.failures or 0) + 1
        throttle.last_failure_at = now
        if throttle.failures >= settings.lockout_failures:
            throttle.locked_until = now + timedelta(minutes=settings.lockout_minutes)
            throttle.failures = 0
        record_audit(session, at=now, actor=key, action="sign-in.failed", source=source)
        return SignIn(None, "Wrong user name or password.")
    assert admin is not None  # noqa: S101 - narrowed by ok
    if throttle is not None:
        session.delete(throttle)
    admin.last_login_at = now
    if _hasher.check_needs_rehash(admin.password_hash):
        admin.password_hash = hash_password(password)
    record_audit(session, at=now, actor=admin.username, action="sign-in", source=source)
    return SignIn(admin, None)


def start_session(session: Session, settings: PortalSettings, admin: AdminAccount) -> str:
    """A new session for ``admin``; returns the cookie value (shown to nobody else, stored only hashed)."""
    now = settings.clock()
    session.execute(delete(AdminSession).where(AdminSession.expires_at < now))
    cookie = secrets.token_urlsafe(32)
    session.add(
        AdminSession(
            id_hash=hash_secret(cookie),
            admin_id=admin.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + timedelta(hours=settings.session_hours),
            expiry_alert_dismissed=False,
        )
    )
    session.flush()
    return cookie


def load_session(session: Session, cookie: str | None, now: datetime) -> AdminSession | None:
    if not cookie or len(cookie) > 128:
        return None
    row = session.get(AdminSession, hash_secret(cookie))
    if row is None or row.expires_at <= now:
        return None
    return row


def end_session(session: Session, cookie: str | None) -> None:
    if cookie and len(cookie) <= 128:
        session.execute(delete(AdminSession).where(AdminSession.id_hash == hash_secret(cookie)))


def check_csrf(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))
