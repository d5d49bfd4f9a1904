"""Admin pages: API and enrollment tokens (the secret is shown once), status posts, the audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from tlsgate.portal.deps import CsrfChecked, DbSession, SettingsDep, SignedIn, client_address
from tlsgate.portal.tokens import issue_api_token, issue_enrollment_token
from tlsgate.portal.web.render import render
from tlsgate.store import ApiToken, AuditEntry, EnrollmentToken, StatusPost, record_audit

router = APIRouter(include_in_schema=False)


@router.get("/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, db: DbSession, admin_session: SignedIn) -> Response:
    return _tokens(request, db, None)


def _tokens(request: Request, db: DbSession, created: dict[str, str] | None) -> Response:
    return render(
        request,
        "tokens.html",
        {
            "api_tokens": db.scalars(select(ApiToken).order_by(ApiToken.id.desc())).all(),
            "enrollment_tokens": db.scalars(select(EnrollmentToken).order_by(EnrollmentToken.id.desc())).all(),
            "created": created,
        },
    )


@router.post("/tokens")
def create_token(
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    admin_session: CsrfChecked,
    kind: Annotated[str, Form(pattern="^(api|enrollment)$")],
    name: Annotated[str, Form(min_length=1, max_length=128)],
    expires_days: Annotated[int | None, Form(ge=1, le=3650)] = None,
    max_uses: Annotated[int | None, Form(ge=1, le=1_000_000)] = None,
) -> Response:
    now = settings.clock()
    actor = admin_session.admin.username
    expires = now + timedelta(days=expires_days) if expires_days else None
    token: ApiToken | EnrollmentToken
    if kind == "api":
        secret, token = issue_api_token(db, name, actor, now, expires)
    else:
        secret, token = issue_enrollment_token(db, name, actor, now, expires, max_uses)
    record_audit(
        db,
        at=now,
        actor=actor,
        action=f"token.{kind}.create",
        target=f"{token.prefix}… {name}",
        detail={"expires_at": expires.isoformat() if expires else None},
        source=client_address(request),
    )
    return _tokens(request, db, {"kind": kind, "name": name, "secret": secret})


@router.post("/tokens/{kind}/{token_id}/revoke")
def revoke_token(
    kind: str, token_id: int, request: Request, db: DbSession, settings: SettingsDep, admin_session: CsrfChecked
) -> Response:
    token: ApiToken | EnrollmentToken | None = None
    if kind == "api":
        token = db.get(ApiToken, token_id)
    elif kind == "enrollment":
        token = db.get(EnrollmentToken, token_id)
    if token is None:
        raise HTTPException(404, "no such token")
    token.revoked_at = settings.clock()
    record_audit(
        db,
        at=settings.clock(),
        actor=admin_session.admin.username,
        action=f"token.{kind}.revoke",
        target=f"{token.prefix}… {token.name}",
        source=client_address(request),
    )
    return RedirectResponse("/tokens", status_code=303)


@router.get("/admin/status-posts", response_class=HTMLResponse)
def posts_page(request: Request, db: DbSession, admin_session: SignedIn) -> Response:
    posts = db.scalars(select(StatusPost).order_by(StatusPost.published_at.desc())).all()
    return render(request, "posts.html", {"posts": posts})


@router.post("/admin/status-posts")
def create_post(
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    admin_session: CsrfChecked,
    title: Annotated[str, Form(min_length=1, max_length=200)],
    body: Annotated[str, Form(max_length=20_000)] = "",
    kind: Annotated[str, Form(pattern="^(announcement|reminder|incident)$")] = "announcement",
) -> Response:
    post = StatusPost(
        kind=kind, title=title, body=body, published_at=settings.clock(), created_by=admin_session.admin.username
    )
    db.add(post)
    db.flush()
    record_audit(
        db,
        at=settings.clock(),
        actor=admin_session.admin.username,
        action="status-post.create",
        target=f"#{post.id} {title}",
        source=client_address(request),
    )
    return RedirectResponse("/admin/status-posts", status_code=303)


@router.post("/admin/status-posts/{post_id}/delete")
def delete_post(
    post_id: int, request: Request, db: DbSession, settings: SettingsDep, admin_session: CsrfChecked
) -> Response:
    post = db.get(StatusPost, post_id)
    if post is None:
        raise HTTPException(404, "no such post")
    record_audit(
        db,
        at=settings.clock(),
        actor=admin_session.admin.username,
        action="status-post.delete",
        target=f"#{post.id} {post.title}",
        source=client_address(request),
    )
    db.delete(post)
    return RedirectResponse("/admin/status-posts", status_code=303)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, db: DbSession, admin_session: SignedIn) -> Response:
    entries = db.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(500)).all()
    return render(request, "audit.html", {"entries": entries})
