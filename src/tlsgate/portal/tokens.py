"""Issuing and checking bearer secrets: admin API tokens, enrollment tokens, endpoint credentials.

A secret's prefix says what it is (``tga_`` API, ``tgn_`` enrollment, ``tgc_`` endpoint); only its SHA-256
is stored. A secret that matches nothing is "unauthenticated" (401); a real secret of the wrong kind for
the operation is "forbidden" (403).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tlsgate.store import ApiToken, Endpoint, EnrollmentToken, hash_secret, new_secret

__all__ = [
    "API_PREFIX",
    "ENDPOINT_PREFIX",
    "ENROLLMENT_PREFIX",
    "find_api_token",
    "find_endpoint",
    "find_enrollment_token",
    "issue_api_token",
    "issue_enrollment_token",
]

API_PREFIX = "tga_"
ENROLLMENT_PREFIX = "tgn_"
ENDPOINT_PREFIX = "tgc_"


def _issue(session: Session, prefix: str, make: Any, **fields: Any) -> tuple[str, Any]:
    """A new secret with ``prefix``; only its hash and first characters are stored."""
    secret = new_secret(prefix)
    token = make(token_hash=hash_secret(secret), prefix=secret[:10], revoked_at=None, **fields)
    session.add(token)
    session.flush()
    return secret, token


def issue_api_token(
    session: Session, name: str, actor: str, now: datetime, expires_at: datetime | None
) -> tuple[str, ApiToken]:
    secret, token = _issue(
        session, API_PREFIX, ApiToken,
        name=name, created_by=actor, created_at=now, expires_at=expires_at, last_used_at=None,
    )  # fmt: skip
    return secret, token


def issue_enrollment_token(
    session: Session, name: str, actor: str, now: datetime, expires_at: datetime | None, max_uses: int | None
) -> tuple[str, EnrollmentToken]:
    secret, token = _issue(
        session, ENROLLMENT_PREFIX, EnrollmentToken,
        name=name, created_by=actor, created_at=now, expires_at=expires_at, max_uses=max_uses, uses=0,
    )  # fmt: skip
    return secret, token


def _usable(revoked_at: datetime | None, expires_at: datetime | None, now: datetime) -> bool:
    return revoked_at is None and (expires_at is None or expires_at > now)


def find_api_token(session: Session, secret: str, now: datetime) -> ApiToken | None:
    if not secret.startswith(API_PREFIX):
        return None
    token = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_secret(secret))).one_or_none()
    if token is None or not _usable(token.revoked_at, token.expires_at, now):
        return None
    token.last_used_at = now
    return token


def find_enrollment_token(session: Session, secret: str, now: datetime) -> EnrollmentToken | None:
    if not secret.startswith(ENROLLMENT_PREFIX):
        return None
    token = session.scalars(
        select(EnrollmentToken).where(EnrollmentToken.token_hash == hash_secret(secret))
    ).one_or_none()
    if token is None or not _usable(token.revoked_at, token.expires_at, now):
        return None
    if token.max_uses is not None and token.uses >= token.max_uses:
        return None
    return token


def find_endpoint(session: Session, secret: str) -> Endpoint | None:
    if not secret.startswith(ENDPOINT_PREFIX):
        return None
    return session.scalars(select(Endpoint).where(Endpoint.credential_hash == hash_secret(secret))).one_or_none()
