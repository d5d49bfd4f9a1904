"""The agent's side of the portal API (``/api/v1``): enroll, fetch the CA set, check in.

Always HTTPS with verification (the system store, plus ``portal_ca`` when the
portal's certificate comes from a private CA). Failures become
:class:`PortalError` with one line for a person; nothing here touches a store.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509

from tlsgate.errors import TlsgateError
from tlsgate.trust import parse_pem_bundle

__all__ = ["CASet", "PortalClient", "PortalError", "parse_ca_set"]


class PortalError(TlsgateError):
    """The portal could not be reached or refused a request."""


@dataclass(frozen=True, slots=True)
class CASet:
    roots: tuple[x509.Certificate, ...]
    crosses: tuple[x509.Certificate, ...]
    current_root_spki: str


def parse_ca_set(data: Any) -> CASet:
    """The CA set as the portal sends it (``GET /api/v1/ca``, or in a check-in answer)."""
    try:
        roots = tuple(
            cert
            for v in data["versions"]
            if v.get("role") == "root"
            for cert in parse_pem_bundle(str(v["certificate_pem"]).encode())
        )
        crosses = tuple(
            cert for c in data.get("crosses", []) for cert in parse_pem_bundle(str(c["certificate_pem"]).encode())
        )
        current = str(data["current_root"])
    except (KeyError, TypeError, AttributeError):
        raise PortalError("the portal sent a CA set this agent cannot read") from None
    if not roots:
        raise PortalError("the portal sent a CA set without any root certificate")
    return CASet(roots, crosses, current)


class PortalClient:
    def __init__(
        self,
        base_url: str,
        *,
        portal_ca: Path | None = None,
        timeout: float = 20.0,
        transport: httpx.BaseTransport | None = None,  # tests pass an httpx.MockTransport
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "https" or not parts.hostname:
            raise PortalError(f"the portal URL must be https://… (got {base_url!r}); the agent never talks in clear")
        context = ssl.create_default_context()
        if portal_ca is not None:
            try:
                context.load_verify_locations(cafile=str(portal_ca))
            except (OSError, ssl.SSLError) as exc:
                raise PortalError(f"cannot use {portal_ca} as the portal's CA: {exc}") from None
        self._client = httpx.Client(base_url=base_url.rstrip("/"), verify=context, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._client.close()

    def enroll(self, token: str, hostname: str, os_name: str, agent_version: str) -> dict[str, Any]:
        body = {"hostname": hostname, "os": os_name, "agent_version": agent_version}
        return self._call("POST", "/api/v1/enroll", token, body)

    def ca_set(self) -> dict[str, Any]:
        return self._call("GET", "/api/v1/ca", None, None)

    def check_in(self, endpoint_id: str, credential: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/endpoints/{endpoint_id}/checkins", credential, dict(body))

    def _call(self, method: str, path: str, secret: str | None, body: dict[str, Any] | None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        try:
            response = self._client.request(method, path, json=body, headers=headers)
        except httpx.ConnectError as exc:
            reason = "its certificate could not be verified" if "CERTIFICATE_VERIFY_FAILED" in str(exc) else str(exc)
            raise PortalError(f"cannot reach the portal at {self._client.base_url}: {reason}") from None
        except httpx.HTTPError as exc:
            raise PortalError(f"cannot reach the portal at {self._client.base_url}: {exc}") from None
        if response.status_code >= 400:
            raise PortalError(f"the portal answered {response.status_code} to {method} {path}: {_message(response)}")
        try:
            data = response.json()
        except ValueError:
            raise PortalError(f"the portal answered {method} {path} with something other than JSON") from None
        if not isinstance(data, dict):
            raise PortalError(f"the portal answered {method} {path} with an unexpected body")
        return data


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
        error = body.get("error", {})
        return str(error.get("message") or body.get("detail") or response.reason_phrase)
    except (ValueError, AttributeError):
        return response.reason_phrase
