"""Request and response bodies of ``/api/v1``. Strict, bounded inputs: bad input is a 422, never a 500."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "AuditOut",
    "CASet",
    "CAVersionOut",
    "CheckInIn",
    "CheckInOut",
    "CheckInRecord",
    "CrossOut",
    "DoNotInspectIn",
    "DoNotInspectOut",
    "EndpointOut",
    "EnrollIn",
    "EnrollOut",
    "EnrollmentTokenIn",
    "ErrorBody",
    "FleetOut",
    "RenewIn",
    "RotateIn",
    "StatusPostIn",
    "StatusPostOut",
    "TokenOut",
    "TrustedIn",
]

Text64 = Annotated[str, StringConstraints(max_length=64, strip_whitespace=True)]
Text128 = Annotated[str, StringConstraints(max_length=128, strip_whitespace=True)]
Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    status: int
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class CAVersionOut(BaseModel):
    identity: str
    role: str
    version: int
    current: bool
    current_root: bool
    subject: str
    key_type: str
    serial: str
    not_before: datetime
    not_after: datetime
    days_left: int
    status: str
    sha256: str
    sha1: str
    spki_sha256: str
    certificate_pem: str


class CrossOut(BaseModel):
    subject_identity: str = Field(description="SPKI SHA-256 of the identity this certificate carries")
    issuer_identity: str = Field(description="SPKI SHA-256 of the identity that signed it")
    not_after: datetime
    certificate_pem: str


class CASet(BaseModel):
    current_root: str = Field(description="SPKI SHA-256 of the current root identity")
    current_root_sha256: str = Field(description="SHA-256 fingerprint of the current root version")
    issuer: str
    versions: list[CAVersionOut]
    crosses: list[CrossOut] = Field(
        default_factory=list, description="Cross-certificates: how endpoints that trust an older root reach the new one"
    )


class EnrollIn(_In):
    hostname: Annotated[str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True)]
    os: Text128 = ""
    agent_version: Text64 = ""


class EnrollOut(BaseModel):
    endpoint_id: str
    credential: str = Field(description="Bearer credential of this endpoint; shown only once")
    checkin_url: str


class TrustedIn(_In):
    subject: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    spki_sha256: Hex64
    not_after: AwareDatetime
    sha256: Hex64 | None = None
    store: Text64 = ""


class CheckInIn(_In):
    agent_version: Text64 = ""
    os: Text128 = ""
    trusted: Annotated[list[TrustedIn], Field(max_length=500)] = []
    warnings: Annotated[list[Annotated[str, StringConstraints(max_length=500)]], Field(max_length=100)] = []


class CheckInOut(BaseModel):
    state: str
    reason: str
    ca: CASet | None


class CheckInRecord(BaseModel):
    at: datetime
    agent_version: str
    os: str
    trusted: list[dict[str, object]]
    warnings: list[str]


class EndpointOut(BaseModel):
    endpoint_id: str
    hostname: str
    os: str
    agent_version: str
    enrolled_at: datetime
    last_checkin_at: datetime | None
    state: str
    reason: str
    trusts: list[str]


class FleetOut(BaseModel):
    total: int
    ready: int
    at_risk: int
    stale: int
    days_left: int | None


class RenewIn(_In):
    days: Annotated[int, Field(ge=1, le=36500)] = 3650


class RotateIn(_In):
    days: Annotated[int, Field(ge=1, le=36500)] = 3650
    key_type: Literal["ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096"] | None = None
    subject: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None


class DoNotInspectIn(_In):
    hosts: Annotated[list[Annotated[str, StringConstraints(max_length=260)]], Field(max_length=10_000)]


class DoNotInspectOut(BaseModel):
    hosts: list[str]


class EnrollmentTokenIn(_In):
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    max_uses: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    expires_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class TokenOut(BaseModel):
    id: int
    name: str
    token: str = Field(description="The secret; shown only once")
    expires_at: datetime | None


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, object]
    source: str


class StatusPostIn(_In):
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    body: Annotated[str, StringConstraints(max_length=20_000)] = ""
    kind: Literal["announcement", "reminder", "incident"] = "announcement"


class StatusPostOut(BaseModel):
    id: int
    kind: str
    title: str
    body: str
    published_at: datetime
