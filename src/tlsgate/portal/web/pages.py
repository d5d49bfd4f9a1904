"""Dashboard, Policy > TLS/SSL Interception (versions, downloads, renew, rotate, do-not-inspect),
Endpoints, the public status page, and dismissing the expiry alert."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from tlsgate.ca import KeyType, describe_version
from tlsgate.ca.authority import DEFAULT_CA_DAYS
from tlsgate.errors import ConfigError
from tlsgate.portal.deps import CsrfChecked, DbSession, SettingsDep, SignedIn, client_address, safe_local_path
from tlsgate.portal.hosts import parse_host_list
from tlsgate.portal.services import DOWNLOADS, download, fleet, load_ca, require_ca, synced_ca
from tlsgate.portal.web.render import render
from tlsgate.store import (
    Notification,
    StatusPost,
    do_not_inspect_hosts,
    record_audit,
    replace_do_not_inspect_hosts,
    sync_ca_versions,
)

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, db: DbSession, settings: SettingsDep, admin_session: SignedIn) -> Response:
    ca = synced_ca(db, settings)
    now = settings.clock()
    summary = fleet(db, settings, ca)
    root = ca.root.current if ca else None
    return render(
        request,
        "dashboard.html",
        {"ca": ca, "root": root, "days_left": root.days_left(now) if root else None, "fleet": summary},
    )


@router.get("/policy/tls", response_class=HTMLResponse)
def tls_page(request: Request, db: DbSession, settings: SettingsDep, admin_session: SignedIn) -> Response:
    ca = synced_ca(db, settings)
    now = settings.clock()
    versions = []
    if ca is not None:
        versions = [
            describe_version(v, now, current=ca.is_current(v)) | {"current_root": v is ca.root.current}
            for identity in ca.identities
            for v in reversed(identity.versions)
        ]
    return render(
        request,
        "tls.html",
        {
            "ca": ca,
            "root": ca.root.current if ca else None,
            "versions": versions,
            "downloads": DOWNLOADS.values(),
            "hosts": do_not_inspect_hosts(db),
            "fleet": fleet(db, settings, ca),
            "default_days": DEFAULT_CA_DAYS,
            "key_types": [k.value for k in KeyType],
            "communications": db.scalars(select(Notification).order_by(Notification.id.desc()).limit(100)).all(),
        },
    )


@router.get("/policy/tls/download/{name}")
def tls_download(name: str, db: DbSession, settings: SettingsDep, admin_session: SignedIn) -> Response:
    item = DOWNLOADS.get(name)
    if item is None:
        raise HTTPException(404, f"no download called {name!r}")
    ca = require_ca(settings)
    data = download(ca, item, settings.clock())
    return Response(
        data,
        media_type=item.media_type,
        headers={"Content-Disposition": f'attachment; filename="{item.filename}"', "Cache-Control": "no-store"},
    )


@router.get("/policy/tls/{operation}", response_class=HTMLResponse)
def tls_confirm(operation: str, request: Request, settings: SettingsDep, admin_session: SignedIn) -> Response:
    if operation not in ("renew", "rotate"):
        raise HTTPException(404, "no such page")
    ca = require_ca(settings)
    return render(
        request,
        "confirm.html",
        {
            "operation": operation,
            "root": ca.root.current,
            "default_days": DEFAULT_CA_DAYS,
            "key_types": [k.value for k in KeyType],
        },
    )


@router.post("/policy/tls/renew")
def tls_renew(
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    admin_session: CsrfChecked,
    days: Annotated[int, Form(ge=1, le=36500)] = DEFAULT_CA_DAYS,
    confirm: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    if confirm != "yes":
        return RedirectResponse("/policy/tls/renew", status_code=303)
    ca = require_ca(settings)
    new = ca.renew(days)
    sync_ca_versions(db, ca, settings.clock())
    record_audit(
        db,
        at=settings.clock(),
        actor=admin_session.admin.username,
        action="ca.renew",
        target=ca.root.id,
        detail={
            "days": days,
            "versions": [{"role": v.role.value, "number": v.number, "sha256": v.sha256} for v in new],
        },
        source=client_address(request),
    )
    return RedirectResponse("/policy/tls?done=renewed", status_code=303)


@router.post("/policy/tls/rotate")
def tls_rotate(
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    admin_session: CsrfChecked,
    days: Annotated[int, Form(ge=1, le=36500)] = DEFAULT_CA_DAYS,
    key_type: Annotated[str, Form(max_length=32)] = "",
    subject: Annotated[str, Form(max_length=500)] = "",
    confirm: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    if confirm != "yes":
        return RedirectResponse("/policy/tls/rotate", status_code=303)
    ca = require_ca(settings)
    old = ca.root.id
    new = ca.rotate(KeyType.parse(key_type) if key_type else None, subject.strip() or None, days)
    sync_ca_versions(db, ca, settings.clock())
    record_audit(
        db,
        at=settings.clock(),
        actor=admin_session.admin.username,
        action="ca.rotate",
        target=new.id,
        detail={"from": old, "to": new.id, "subject": new.current.subject, "days": days},
        source=client_address(request),
    )
    return RedirectResponse("/policy/tls?done=rotated", status_code=303)


@router.post("/policy/tls/do-not-inspect")
def tls_do_not_inspect(
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    admin_session: CsrfChecked,
    hosts: Annotated[str, Form(max_length=200_000)] = "",
) -> Response:
    try:
        wanted = parse_host_list(hosts.splitlines())
    except ConfigError as exc:
        raise HTTPException(400, str(exc)) from None
    added, removed = replace_do_not_inspect_hosts(db, wanted, actor=admin_session.admin.username, now=settings.clock())
    if added or removed:
        record_audit(
            db,
            at=settings.clock(),
            actor=admin_session.admin.username,
            action="policy.do-not-inspect",
            detail={"added": added, "removed": removed},
            source=client_address(request),
        )
    return RedirectResponse("/policy/tls?done=hosts#do-not-inspect", status_code=303)


@router.get("/endpoints", response_class=HTMLResponse)
def endpoints_page(
    request: Request, db: DbSession, settings: SettingsDep, admin_session: SignedIn, state: str = ""
) -> Response:
    ca = synced_ca(db, settings)
    summary = fleet(db, settings, ca)
    views = [v for v in summary.views if not state or v.assessment.state.value == state]
    return render(
        request,
        "endpoints.html",
        {
            "fleet": summary,
            "views": views,
            "state": state,
            "root": ca.root.current if ca else None,
            "stale_hours": settings.stale_hours,
        },
    )


@router.post("/alerts/dismiss")
def dismiss_alert(request: Request, admin_session: CsrfChecked, next: Annotated[str, Form()] = "/") -> Response:
    admin_session.expiry_alert_dismissed = True
    return RedirectResponse(safe_local_path(next), status_code=303)


@router.get("/status", response_class=HTMLResponse)
def status_page(request: Request, db: DbSession, settings: SettingsDep) -> Response:
    posts = db.scalars(
        select(StatusPost).where(StatusPost.published_at <= settings.clock()).order_by(StatusPost.published_at.desc())
    ).all()
    ca = load_ca(settings)
    return render(request, "status.html", {"posts": posts, "root": ca.root.current if ca else None})
