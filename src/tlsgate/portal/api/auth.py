"""Who is calling the API: an admin API token, an enrollment token, or an endpoint's credential.

No ``Authorization`` header, or a secret that matches nothing: 401. A valid secret of another kind: 403.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tlsgate.portal.deps import DbSession, SettingsDep
from tlsgate.portal.tokens import find_api_token, find_endpoint, find_enrollment_token
from tlsgate.store import ApiToken, Endpoint, EnrollmentToken

__all__ = ["AdminToken", "Caller", "EndpointOrAdmin", "EnrollmentDep"]

_bearer = HTTPBearer(auto_error=False, description="tga_… (admin API token), tgn_… (enrollment) or tgc_… (endpoint)")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class Caller:
    def __init__(self, admin: ApiToken | None = None, endpoint: Endpoint | None = None) -> None:
        self.admin = admin
        self.endpoint = endpoint

    @property
    def actor(self) -> str:
        if self.admin is not None:
            return f"api-token:{self.admin.prefix}…({self.admin.name})"
        return f"endpoint:{self.endpoint.public_id}" if self.endpoint else "anonymous"


def _secret(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise HTTPException(401, "authentication required: send Authorization: Bearer <token>", headers=_CHALLENGE)
    return credentials.credentials.strip()


def _identify(db: DbSession, settings: SettingsDep, credentials: Bearer) -> Caller:
    secret = _secret(credentials)
    now = settings.clock()
    admin = find_api_token(db, secret, now)
    if admin is not None:
        return Caller(admin=admin)
    endpoint = find_endpoint(db, secret)
    if endpoint is not None:
        return Caller(endpoint=endpoint)
    if find_enrollment_token(db, secret, now) is not None:
        raise HTTPException(403, "an enrollment token only enrolls; use the endpoint's credential or an API token")
    raise HTTPException(401, "invalid, expired or revoked token", headers=_CHALLENGE)


def admin_token(caller: Annotated[Caller, Depends(_identify)]) -> Caller:
    if caller.admin is None:
        raise HTTPException(403, "this operation needs an admin API token")
    return caller


def enrollment_token(db: DbSession, settings: SettingsDep, credentials: Bearer) -> EnrollmentToken:
    secret = _secret(credentials)
    token = find_enrollment_token(db, secret, settings.clock())
    if token is not None:
        return token
    if find_api_token(db, secret, settings.clock()) is not None or find_endpoint(db, secret) is not None:
        raise HTTPException(403, "enrolling needs an enrollment token")
    raise HTTPException(401, "invalid, expired, used up or revoked enrollment token", headers=_CHALLENGE)


AdminToken = Annotated[Caller, Depends(admin_token)]
EndpointOrAdmin = Annotated[Caller, Depends(_identify)]
EnrollmentDep = Annotated[EnrollmentToken, Depends(enrollment_token)]
