"""Rendering pages: one Jinja2 environment from the package's templates, and the context every page gets
(the signed-in admin, the CSRF token, the expiry alert unless dismissed in this session)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from tlsgate import __version__
from tlsgate.portal.deps import Viewer
from tlsgate.portal.services import expiry_alert, fleet, load_ca
from tlsgate.portal.settings import PortalSettings
from tlsgate.store import Store

__all__ = ["render", "templates"]

templates = Jinja2Templates(directory=Path(__file__).parent.with_name("templates"))


def _days_class(days: int) -> str:
    if days < 0:
        return "expired"
    if days <= 30:
        return "critical"
    if days <= 90:
        return "warning"
    return "ok"


def _date(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    return value.strftime(fmt) if value else "—"


def _colon_hex(value: str) -> str:
    return ":".join(value[i : i + 2] for i in range(0, len(value), 2)).upper()


templates.env.filters["days_class"] = _days_class
templates.env.filters["date"] = _date
templates.env.filters["colon_hex"] = _colon_hex


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    settings: PortalSettings = request.app.state.settings
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    ctx: dict[str, Any] = {
        "admin": viewer,
        "csrf_token": viewer.csrf_token if viewer else "",
        "version": __version__,
        "now": settings.clock(),
        "alert": None,
        "path": request.url.path,
    }
    show_alert = viewer is not None and not viewer.alert_dismissed and not viewer.must_change_password
    if show_alert and status < 400:
        ca = load_ca(settings)
        alert = expiry_alert(ca, settings)
        if alert is not None:
            store: Store = request.app.state.store
            with store.sessions() as session:
                summary = fleet(session, settings, ca)
            ctx["alert"] = alert
            ctx["alert_fleet"] = summary
    ctx.update(context)
    return templates.TemplateResponse(request, name, ctx, status_code=status)
