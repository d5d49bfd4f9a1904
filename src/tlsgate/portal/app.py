"""The portal's app factory: ``create_app(settings)`` opens (and migrates) the store, creates the first
admin on first start, mounts the pages, the static files and the JSON API, and maps errors: JSON bodies
under ``/api``, HTML pages elsewhere; a :class:`TlsgateError` is always a 4xx, never a 500."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import func, select
from starlette.exceptions import HTTPException as StarletteHTTPException

from tlsgate import __version__
from tlsgate.errors import CAError, CANotFoundError, ConfigError, TlsgateError
from tlsgate.portal.api.v1 import router as api_router
from tlsgate.portal.deps import NotSignedInError, PasswordChangeRequiredError
from tlsgate.portal.middleware import RequestGuard
from tlsgate.portal.security import create_admin, generate_password
from tlsgate.portal.services import synced_ca
from tlsgate.portal.settings import PortalSettings
from tlsgate.portal.web import admin, auth, pages
from tlsgate.portal.web.render import render
from tlsgate.store import AdminAccount, Store, open_store, record_audit

__all__ = ["bootstrap", "create_app"]

log = logging.getLogger("tlsgate.portal")
STATIC = Path(__file__).with_name("static")


def bootstrap(store: Store, settings: PortalSettings) -> str | None:
    """First start: create the admin account and return its one-time password (None when admins exist).

    Also mirrors the CA into the store so the API and pages start from the CA directory's truth.
    """
    with store.session() as session:
        synced_ca(session, settings)
        if session.scalar(select(func.count()).select_from(AdminAccount)):
            return None
        password = generate_password()
        create_admin(session, settings.initial_admin, password, settings.clock(), must_change=True)
        record_audit(
            session,
            at=settings.clock(),
            actor="system",
            action="admin.create",
            target=settings.initial_admin,
            detail={"reason": "first start"},
        )
    return password


def create_app(settings: PortalSettings, *, store: Store | None = None) -> FastAPI:
    store = store or open_store(settings.resolved_database_url)
    password = bootstrap(store, settings)
    if password is not None:
        settings.announce(
            f"Created the portal admin account {settings.initial_admin!r} with the one-time password: {password}\n"
            "It is shown only this once; you will be asked to change it. "
            "(Lost it? tlsgate admin reset-password " + settings.initial_admin + ")"
        )
    app = FastAPI(
        title="tlsgate portal API",
        version=__version__,
        description="The CA set, endpoint enrollment and check-in, and admin operations of tlsgate.",
        docs_url="/api/v1/docs",
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    app.state.settings = settings
    app.state.store = store
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(api_router)
    app.include_router(auth.router)
    app.include_router(pages.router)
    app.include_router(admin.router)
    _errors(app)
    app.add_middleware(RequestGuard)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith("/api/v1/docs"):
            response.headers.setdefault(
                "Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
            )
        return response

    return app


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _json_error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message, **extra}}, status_code=status)


def status_for(exc: TlsgateError) -> int:
    if isinstance(exc, CANotFoundError):
        return 404
    if isinstance(exc, CAError):
        return 409
    if isinstance(exc, ConfigError):
        return 400
    return int(getattr(exc, "error_status_hint", 400))


def _errors(app: FastAPI) -> None:
    @app.exception_handler(PasswordChangeRequiredError)
    async def must_change_password(request: Request, exc: PasswordChangeRequiredError) -> Response:
        if request.method == "GET":
            return RedirectResponse("/account/password", status_code=303)
        return render(request, "error.html", {"status": 403, "message": "change your one-time password first"}, 403)

    @app.exception_handler(NotSignedInError)
    async def not_signed_in(request: Request, exc: NotSignedInError) -> Response:
        target = "/login" if exc.next_path in ("/", "") else f"/login?next={exc.next_path}"
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = getattr(exc, "headers", None)
        if _is_api(request):
            response = _json_error(exc.status_code, str(exc.detail))
            if headers:
                response.headers.update(headers)
            return response
        return render(request, "error.html", {"status": exc.status_code, "message": exc.detail}, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        details = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        if _is_api(request):
            return _json_error(422, "invalid request", details=details)
        message = "; ".join(f"{'.'.join(d['loc'][1:]) or 'form'}: {d['msg']}" for d in details)
        return render(request, "error.html", {"status": 422, "message": message}, 422)

    @app.exception_handler(TlsgateError)
    async def refused(request: Request, exc: TlsgateError) -> Response:
        status = status_for(exc)
        if _is_api(request):
            return _json_error(status, str(exc))
        return render(request, "error.html", {"status": status, "message": str(exc)}, status)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:  # pragma: no cover - a bug, logged
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        if _is_api(request):
            return _json_error(500, "internal error")
        return render(request, "error.html", {"status": 500, "message": "internal error"}, 500)
