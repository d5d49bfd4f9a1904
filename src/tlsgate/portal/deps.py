"""Typed dependencies shared by the pages and the API: settings, a database session per request, the
signed-in admin (pages) and CSRF checks. Everything comes from ``app.state``; nothing is global."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from tlsgate.portal.security import SESSION_COOKIE, check_csrf, load_session
from tlsgate.portal.settings import PortalSettings
from tlsgate.store import AdminSession, Store

__all__ = ["CsrfChecked", "DbSession", "NotSignedInError", "SettingsDep", "SignedIn", "Viewer", "client_address"]


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in admin as pages show them."""

    username: str
    csrf_token: str
    must_change_password: bool
    alert_dismissed: bool


class NotSignedInError(Exception):
    """Raised by page dependencies; the app turns it into a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PasswordChangeRequiredError(Exception):
    """A signed-in admin whose password is one-time may do nothing but change it (or sign out)."""


#: what an admin with a one-time password may still reach
_WHILE_PASSWORD_MUST_CHANGE = ("/account/password", "/logout")


def get_settings(request: Request) -> PortalSettings:
    settings: PortalSettings = request.app.state.settings
    return settings


def get_db(request: Request) -> Iterator[Session]:
    store: Store = request.app.state.store
    with store.sessions() as session, session.begin():
        yield session


SettingsDep = Annotated[PortalSettings, Depends(get_settings)]
DbSession = Annotated[Session, Depends(get_db)]


def safe_local_path(target: str | None) -> str:
    """A redirect target limited to this site: "//evil.test", "/\\evil.test" or "https://…" become "/"."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def signed_in(request: Request, db: DbSession, settings: SettingsDep) -> AdminSession:
    row = load_session(db, request.cookies.get(SESSION_COOKIE), settings.clock())
    if row is None:
        raise NotSignedInError(request.url.path if request.method == "GET" else "/")
    # Plain values for rendering: the ORM row may be expired by a rollback before an error page is drawn.
    request.state.viewer = Viewer(
        row.admin.username, row.csrf_token, row.admin.must_change_password, row.expiry_alert_dismissed
    )
    if row.admin.must_change_password and request.url.path not in _WHILE_PASSWORD_MUST_CHANGE:
        raise PasswordChangeRequiredError
    return row


SignedIn = Annotated[AdminSession, Depends(signed_in)]


async def csrf_checked(request: Request, admin_session: SignedIn) -> AdminSession:
    """Every state-changing form of a signed-in admin carries the session's CSRF token."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.rstrip("/") != f"{request.url.scheme}://{request.url.netloc}":
        raise HTTPException(403, "cross-origin form post refused")
    form = await request.form()
    given = form.get("csrf_token")
    if not check_csrf(admin_session.csrf_token, given if isinstance(given, str) else None):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
    return admin_session


CsrfChecked = Annotated[AdminSession, Depends(csrf_checked)]
