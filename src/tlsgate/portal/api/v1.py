"""``/api/v1``: the CA set (public), enrollment and check-in (agents), and admin operations (API tokens).

An endpoint's credential reaches only that endpoint's own records: any other endpoint id is a 403.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from sqlalchemy import or_, select, update

from tlsgate.ca import CertificateAuthority, ExportFormat, KeyType, describe_version
from tlsgate.errors import ConfigError
from tlsgate.portal.api.auth import AdminToken, EndpointOrAdmin, EnrollmentDep
from tlsgate.portal.api.schemas import (
    AuditOut,
    CASet,
    CAVersionOut,
    CheckInIn,
    CheckInOut,
    CheckInRecord,
    CrossOut,
    DoNotInspectIn,
    DoNotInspectOut,
    EndpointOut,
    EnrollIn,
    EnrollmentTokenIn,
    EnrollOut,
    ErrorBody,
    FleetOut,
    RenewIn,
    RotateIn,
    StatusPostIn,
    StatusPostOut,
    TokenOut,
)
from tlsgate.portal.deps import DbSession, SettingsDep, client_address
from tlsgate.portal.hosts import parse_host_list
from tlsgate.portal.services import Download, download, endpoint_view, fleet, load_ca, require_ca, root_facts, synced_ca
from tlsgate.portal.settings import PortalSettings
from tlsgate.portal.tokens import ENDPOINT_PREFIX, issue_enrollment_token
from tlsgate.store import (
    AuditEntry,
    CAVersionRecord,
    CheckIn,
    Endpoint,
    EnrollmentToken,
    StatusPost,
    do_not_inspect_hosts,
    hash_secret,
    new_secret,
    record_audit,
    replace_do_not_inspect_hosts,
    sync_ca_versions,
)

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 422)}
router = APIRouter(prefix="/api/v1", responses=_ERRORS)


def _ca_set(ca: CertificateAuthority, settings: PortalSettings) -> CASet:
    now = settings.clock()
    versions = [
        CAVersionOut.model_validate(
            describe_version(v, now, current=ca.is_current(v))
            | {"current_root": v is ca.root.current, "certificate_pem": v.pem.decode("ascii")}
        )
        for identity in ca.identities
        for v in identity.versions
    ]
    crosses = [
        CrossOut(
            subject_identity=c.subject_id,
            issuer_identity=c.issuer_id,
            not_after=c.cert.not_valid_after_utc,
            certificate_pem=c.pem.decode("ascii"),
        )
        for c in ca.crosses
    ]
    return CASet(
        current_root=ca.root.id,
        current_root_sha256=ca.root.current.sha256,
        issuer=ca.issuer.id,
        versions=versions,
        crosses=crosses,
    )


@router.get("/ca", response_model=CASet, tags=["ca"], summary="Every version of the CA (public certificates)")
def get_ca(settings: SettingsDep) -> CASet:
    return _ca_set(require_ca(settings), settings)


@router.get(
    "/ca/certificates",
    tags=["ca"],
    summary="The root certificate(s), as `tlsgate ca export` writes them",
    responses={200: {"content": {"application/x-pem-file": {}, "application/octet-stream": {}}}},
)
def get_ca_certificates(
    settings: SettingsDep,
    format: Annotated[ExportFormat, Query()] = ExportFormat.PEM,
    all_versions: Annotated[bool, Query()] = False,
) -> Response:
    ca = require_ca(settings)
    item = Download("api", "", format, all_versions, "", "")
    if format is ExportFormat.DER and all_versions:
        raise ConfigError("DER holds exactly one certificate; use pem or p7b for all versions")
    media = "application/x-pem-file" if format is ExportFormat.PEM else "application/octet-stream"
    return Response(download(ca, item, settings.clock()), media_type=media)


@router.post("/enroll", response_model=EnrollOut, status_code=201, tags=["agent"], summary="Enroll an endpoint")
def enroll(body: EnrollIn, request: Request, db: DbSession, settings: SettingsDep, token: EnrollmentDep) -> EnrollOut:
    now = settings.clock()
    credential = new_secret(ENDPOINT_PREFIX)
    endpoint = Endpoint(
        public_id=str(uuid.uuid4()),
        hostname=body.hostname,
        os=body.os,
        agent_version=body.agent_version,
        credential_hash=hash_secret(credential),
        enrollment_token_id=token.id,
        enrolled_at=now,
        last_checkin_at=None,
        trusted=[],
    )
    # One atomic compare-and-increment, so two enrollments racing on PostgreSQL cannot both use
    # the last use of a limited token.
    claimed = db.execute(
        update(EnrollmentToken)
        .where(
            EnrollmentToken.id == token.id,
            or_(EnrollmentToken.max_uses.is_(None), EnrollmentToken.uses < EnrollmentToken.max_uses),
        )
        .values(uses=EnrollmentToken.uses + 1)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if claimed != 1:
        raise HTTPException(403, "this enrollment token has been used up")
    db.add(endpoint)
    db.flush()
    record_audit(
        db,
        at=now,
        actor=f"enrollment-token:{token.prefix}…({token.name})",
        action="endpoint.enroll",
        target=f"{endpoint.public_id} {endpoint.hostname}",
        source=client_address(request),
    )
    return EnrollOut(
        endpoint_id=endpoint.public_id,
        credential=credential,
        checkin_url=f"/api/v1/endpoints/{endpoint.public_id}/checkins",
    )


def _own(db: DbSession, caller: Any, endpoint_id: str) -> Endpoint:
    """The endpoint the caller may see: its own (endpoint credential), or any (admin token)."""
    if caller.endpoint is not None:
        if caller.endpoint.public_id != endpoint_id:
            raise HTTPException(403, "an endpoint may only reach its own records")
        return caller.endpoint  # type: ignore[no-any-return]
    endpoint = db.scalars(select(Endpoint).where(Endpoint.public_id == endpoint_id)).one_or_none()
    if endpoint is None:
        raise HTTPException(404, "no such endpoint")
    return endpoint


def _endpoint_out(db: DbSession, settings: PortalSettings, endpoint: Endpoint) -> EndpointOut:
    records = list(db.scalars(select(CAVersionRecord)))
    view = endpoint_view(endpoint, root_facts(load_ca(settings)), records, settings)
    return EndpointOut(
        endpoint_id=endpoint.public_id,
        hostname=endpoint.hostname,
        os=endpoint.os,
        agent_version=endpoint.agent_version,
        enrolled_at=endpoint.enrolled_at,
        last_checkin_at=endpoint.last_checkin_at,
        state=view.assessment.state.value,
        reason=view.assessment.reason,
        trusts=list(view.trusts),
    )


@router.post(
    "/endpoints/{endpoint_id}/checkins",
    response_model=CheckInOut,
    tags=["agent"],
    summary="Report the trust stores; get the readiness verdict and the CA set",
)
def check_in(
    endpoint_id: str, body: CheckInIn, db: DbSession, settings: SettingsDep, caller: EndpointOrAdmin
) -> CheckInOut:
    if caller.endpoint is None:
        raise HTTPException(403, "check-ins come from the endpoint itself, with its credential")
    endpoint = _own(db, caller, endpoint_id)
    now = settings.clock()
    trusted = [t.model_dump(mode="json", exclude_none=True) for t in body.trusted]
    db.add(
        CheckIn(
            endpoint_id=endpoint.id,
            at=now,
            agent_version=body.agent_version,
            os=body.os,
            trusted=trusted,
            warnings=list(body.warnings),
        )
    )
    endpoint.last_checkin_at = now
    endpoint.trusted = trusted
    endpoint.agent_version = body.agent_version or endpoint.agent_version
    endpoint.os = body.os or endpoint.os
    ca = synced_ca(db, settings)
    out = _endpoint_out(db, settings, endpoint)
    return CheckInOut(state=out.state, reason=out.reason, ca=_ca_set(ca, settings) if ca else None)


@router.get("/endpoints/{endpoint_id}", response_model=EndpointOut, tags=["agent", "admin"])
def get_endpoint(endpoint_id: str, db: DbSession, settings: SettingsDep, caller: EndpointOrAdmin) -> EndpointOut:
    return _endpoint_out(db, settings, _own(db, caller, endpoint_id))


@router.get("/endpoints/{endpoint_id}/checkins", response_model=list[CheckInRecord], tags=["agent", "admin"])
def list_checkins(
    endpoint_id: str, db: DbSession, caller: EndpointOrAdmin, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[CheckInRecord]:
    endpoint = _own(db, caller, endpoint_id)
    rows = db.scalars(
        select(CheckIn).where(CheckIn.endpoint_id == endpoint.id).order_by(CheckIn.id.desc()).limit(limit)
    )
    return [
        CheckInRecord(at=r.at, agent_version=r.agent_version, os=r.os, trusted=r.trusted, warnings=r.warnings)
        for r in rows
    ]


@router.get("/endpoints", response_model=list[EndpointOut], tags=["admin"])
def list_endpoints(db: DbSession, settings: SettingsDep, caller: AdminToken) -> list[EndpointOut]:
    return [_endpoint_out(db, settings, e) for e in db.scalars(select(Endpoint).order_by(Endpoint.id))]


@router.delete("/endpoints/{endpoint_id}", status_code=204, tags=["admin"])
def delete_endpoint(
    endpoint_id: str, request: Request, db: DbSession, settings: SettingsDep, caller: AdminToken
) -> Response:
    endpoint = _own(db, caller, endpoint_id)
    record_audit(
        db,
        at=settings.clock(),
        actor=caller.actor,
        action="endpoint.delete",
        target=f"{endpoint.public_id} {endpoint.hostname}",
        source=client_address(request),
    )
    db.delete(endpoint)
    return Response(status_code=204)


@router.get("/fleet", response_model=FleetOut, tags=["admin"], summary="Fleet readiness at a glance")
def get_fleet(db: DbSession, settings: SettingsDep, caller: AdminToken) -> FleetOut:
    ca = synced_ca(db, settings)
    counts = fleet(db, settings, ca).counts
    return FleetOut(
        total=sum(counts.values()),
        ready=counts["ready"],
        at_risk=counts["at-risk"],
        stale=counts["stale"],
        days_left=ca.root.current.days_left(settings.clock()) if ca else None,
    )


@router.post("/ca/renew", response_model=CASet, tags=["admin"], summary="Renew the root in place")
def renew(body: RenewIn, request: Request, db: DbSession, settings: SettingsDep, caller: AdminToken) -> CASet:
    ca = require_ca(settings)
    new = ca.renew(body.days)
    sync_ca_versions(db, ca, settings.clock())
    record_audit(
        db,
        at=settings.clock(),
        actor=caller.actor,
        action="ca.renew",
        target=ca.root.id,
        detail={"days": body.days, "versions": [v.sha256 for v in new]},
        source=client_address(request),
    )
    return _ca_set(ca, settings)


@router.post("/ca/rotate", response_model=CASet, tags=["admin"], summary="Rotate to a new, cross-signed root")
def rotate(body: RotateIn, request: Request, db: DbSession, settings: SettingsDep, caller: AdminToken) -> CASet:
    ca = require_ca(settings)
    old = ca.root.id
    new = ca.rotate(KeyType.parse(body.key_type) if body.key_type else None, body.subject, body.days)
    sync_ca_versions(db, ca, settings.clock())
    record_audit(
        db,
        at=settings.clock(),
        actor=caller.actor,
        action="ca.rotate",
        target=new.id,
        detail={"from": old, "to": new.id, "days": body.days},
        source=client_address(request),
    )
    return _ca_set(ca, settings)


@router.get("/do-not-inspect", response_model=DoNotInspectOut, tags=["admin"])
def get_do_not_inspect(db: DbSession, caller: AdminToken) -> DoNotInspectOut:
    return DoNotInspectOut(hosts=do_not_inspect_hosts(db))


@router.put("/do-not-inspect", response_model=DoNotInspectOut, tags=["admin"])
def put_do_not_inspect(
    body: DoNotInspectIn, request: Request, db: DbSession, settings: SettingsDep, caller: AdminToken
) -> DoNotInspectOut:
    hosts = parse_host_list(body.hosts)
    added, removed = replace_do_not_inspect_hosts(db, hosts, actor=caller.actor[:64], now=settings.clock())
    record_audit(
        db,
        at=settings.clock(),
        actor=caller.actor,
        action="policy.do-not-inspect",
        detail={"added": added, "removed": removed},
        source=client_address(request),
    )
    return DoNotInspectOut(hosts=do_not_inspect_hosts(db))


@router.post("/enrollment-tokens", response_model=TokenOut, status_code=201, tags=["admin"])
def create_enrollment_token(
    body: EnrollmentTokenIn, request: Request, db: DbSession, settings: SettingsDep, caller: AdminToken
) -> TokenOut:
    now = settings.clock()
    expires = now + timedelta(days=body.expires_days) if body.expires_days else None
    secret, token = issue_enrollment_token(db, body.name, caller.actor[:64], now, expires, body.max_uses)
    record_audit(
        db,
        at=now,
        actor=caller.actor,
        action="token.enrollment.create",
        target=f"{token.prefix}… {body.name}",
        source=client_address(request),
    )
    return TokenOut(id=token.id, name=token.name, token=secret, expires_at=expires)


@router.get("/audit", response_model=list[AuditOut], tags=["admin"])
def get_audit(db: DbSession, caller: AdminToken, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditOut]:
    rows = db.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit))
    return [
        AuditOut(id=r.id, at=r.at, actor=r.actor, action=r.action, target=r.target, detail=r.detail, source=r.source)
        for r in rows
    ]


@router.get("/status-posts", response_model=list[StatusPostOut], tags=["status"], summary="Public status posts")
def get_status_posts(db: DbSession, settings: SettingsDep) -> list[StatusPostOut]:
    rows = db.scalars(
        select(StatusPost).where(StatusPost.published_at <= settings.clock()).order_by(StatusPost.published_at.desc())
    )
    return [StatusPostOut(id=p.id, kind=p.kind, title=p.title, body=p.body, published_at=p.published_at) for p in rows]


@router.post("/status-posts", response_model=StatusPostOut, status_code=201, tags=["admin"])
def create_status_post(
    body: StatusPostIn, request: Request, db: DbSession, settings: SettingsDep, caller: AdminToken
) -> StatusPostOut:
    post = StatusPost(
        kind=body.kind, title=body.title, body=body.body, published_at=settings.clock(), created_by=caller.actor[:64]
    )
    db.add(post)
    db.flush()
    record_audit(
        db,
        at=settings.clock(),
        actor=caller.actor,
        action="status-post.create",
        target=f"#{post.id} {post.title}",
        source=client_address(request),
    )
    return StatusPostOut(id=post.id, kind=post.kind, title=post.title, body=post.body, published_at=post.published_at)
