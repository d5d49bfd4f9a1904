"""Sign-in, sign-out and changing one's password."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tlsgate.portal.deps import CsrfChecked, DbSession, SettingsDep, SignedIn, client_address, safe_local_path
from tlsgate.portal.security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    authenticate,
    check_csrf,
    check_new_password,
    end_session,
    load_session,
    set_password,
    start_session,
    verify_password,
)
from tlsgate.portal.web.render import render
from tlsgate.store import record_audit

router = APIRouter(include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, db: DbSession, settings: SettingsDep, next: str = "/") -> Response:
    if load_session(db, request.cookies.get(SESSION_COOKIE), settings.clock()) is not None:
        return RedirectResponse(safe_local_path(next), status_code=303)
    return _login_form(request, settings.secure_cookies, safe_local_path(next), None, 200)


def _login_form(request: Request, secure: bool, next_path: str, error: str | None, status: int) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(request, "login.html", {"login_csrf": token, "next": next_path, "error": error}, status)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/login")
    return response


@router.post("/login")
def login(
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    if not check_csrf(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        raise HTTPException(403, "missing or wrong CSRF token: reload the sign-in page and try again")
    result = authenticate(db, settings, username, password, client_address(request))
    if result.admin is None:
        return _login_form(request, settings.secure_cookies, safe_local_path(next), result.error, 401)
    cookie = start_session(db, settings, result.admin)
    target = "/account/password" if result.admin.must_change_password else safe_local_path(next)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        max_age=settings.session_hours * 3600,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, db: DbSession, settings: SettingsDep, admin_session: CsrfChecked) -> Response:
    record_audit(
        db, at=settings.clock(), actor=admin_session.admin.username, action="sign-out", source=client_address(request)
    )
    end_session(db, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/account/password", response_class=HTMLResponse)
def password_page(request: Request, admin_session: SignedIn) -> Response:
    return render(request, "password.html", {"error": None})


@router.post("/account/password")
def change_password(
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    admin_session: CsrfChecked,
    current: Annotated[str, Form(max_length=1024)] = "",
    new: Annotated[str, Form(max_length=1024)] = "",
    confirm: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    admin = admin_session.admin
    error = None
    if not verify_password(admin.password_hash, current):
        error = "The current password is wrong."
    elif new != confirm:
        error = "The new passwords differ."
    else:
        error = check_new_password(new)
    if error:
        return render(request, "password.html", {"error": error}, 400)
    set_password(db, admin, new, settings.clock(), must_change=False)
    record_audit(
        db,
        at=settings.clock(),
        actor=admin.username,
        action="admin.password-change",
        target=admin.username,
        source=client_address(request),
    )
    cookie = start_session(db, settings, admin)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        max_age=settings.session_hours * 3600,
    )
    return response
