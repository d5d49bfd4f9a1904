"""Enroll, sync and run: the agent's whole job, joining the portal, the acceptance rule and the stores.

* ``enroll`` registers the endpoint and remembers the CA identity the portal
  serves at that moment (optionally pinned by ``expect_spki`` out of band).
* ``sync`` fetches the CA set (or, when the portal is down, uses the last good
  one), accepts only what ties to the enrolled identity, brings every store up
  to date, and checks in with what each store now holds and what was refused.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tlsgate.agent.acceptance import accept_ca_set
from tlsgate.agent.core import Agent, EndpointStatus, StoreChange
from tlsgate.agent.portal import PortalClient, PortalError, parse_ca_set
from tlsgate.agent.state import AgentFiles, AgentState
from tlsgate.clock import Clock, system_clock
from tlsgate.errors import TrustStoreError
from tlsgate.trust import CAIdentityRef, TrustStore, cert_sha256, spki_sha256_of

__all__ = ["SyncReport", "enroll", "sync"]


def enroll(
    files: AgentFiles,
    client: PortalClient,
    portal_url: str,
    token: str,
    *,
    hostname: str,
    os_name: str,
    agent_version: str,
    expect_spki: str | None = None,
    portal_ca: str | None = None,
) -> AgentState:
    raw = client.ca_set()
    ca = parse_ca_set(raw)
    current = [c for c in ca.roots if spki_sha256_of(c) == ca.current_root_spki]
    if not current:
        raise PortalError("the portal's CA set does not contain its own current root")
    if expect_spki and expect_spki.lower() != ca.current_root_spki:
        raise PortalError(
            f"the portal's CA key is {ca.current_root_spki[:16]}…, not the expected {expect_spki[:16]}…; not enrolling"
        )
    answer = client.enroll(token, hostname, os_name, agent_version)
    try:
        endpoint_id, credential = str(answer["endpoint_id"]), str(answer["credential"])
    except KeyError:
        raise PortalError("the portal's enrollment answer lacks the endpoint id or credential") from None
    state = AgentState(portal_url, endpoint_id, (CAIdentityRef.of(current[-1]),), portal_ca)
    files.save_credential(credential)
    files.save(state)
    files.save_ca_set(raw)
    return state


@dataclass(frozen=True, slots=True)
class SyncReport:
    changes: tuple[StoreChange, ...]
    status: EndpointStatus
    refused: tuple[str, ...]
    portal_error: str | None  # the portal was not reachable: the last good CA set was used
    readiness: dict[str, Any] | None  # the portal's verdict from the check-in

    @property
    def failed_stores(self) -> tuple[StoreChange, ...]:
        return tuple(c for c in self.changes if c.error)


def sync(
    files: AgentFiles,
    state: AgentState,
    client: PortalClient,
    stores: list[TrustStore],
    *,
    agent_version: str,
    os_name: str,
    clock: Clock = system_clock,
    dry_run: bool = False,
) -> SyncReport:
    portal_error = None
    raw: Any
    try:
        raw = client.ca_set()
        parse_ca_set(raw)
        if not dry_run:
            files.save_ca_set(raw)
    except PortalError as exc:
        raw = files.load_ca_set()
        if raw is None:
            raise
        portal_error = str(exc)
    ca = parse_ca_set(raw)
    now = clock()
    acceptance = accept_ca_set(state.identities, ca.roots, ca.crosses, now)
    if acceptance.identities != state.identities and not dry_run:
        state = dataclasses.replace(state, identities=acceptance.identities)
        files.save(state)  # a rotation accepted through its cross-certificate is remembered
    agent = Agent(stores, acceptance.identities, clock)
    changes = tuple(agent.apply(acceptance.versions, dry_run=dry_run))
    status = agent.status()
    refused = tuple(reason for _, reason in acceptance.refused)
    readiness = None
    if not dry_run and portal_error is None:
        credential = files.credential()
        if credential is None or state.endpoint_id is None:
            raise TrustStoreError("this agent has no endpoint credential: enroll again")
        body = _check_in_body(status, changes, refused, now, agent_version=agent_version, os_name=os_name)
        try:
            answer = client.check_in(state.endpoint_id, credential, body)
            readiness = {"state": answer.get("state"), "reason": answer.get("reason")}
        except PortalError as exc:
            portal_error = str(exc)
    return SyncReport(changes, status, refused, portal_error, readiness)


def _check_in_body(
    status: EndpointStatus,
    changes: tuple[StoreChange, ...],
    refused: tuple[str, ...],
    now: datetime,
    *,
    agent_version: str,
    os_name: str,
) -> dict[str, Any]:
    trusted = [
        {
            "subject": cert.subject.rfc4514_string(),
            "spki_sha256": spki_sha256_of(cert),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "sha256": cert_sha256(cert),
            "store": store.store[:64],
        }
        for store in status.stores
        for cert in store.versions
    ]
    warnings = [*refused, *(f"{c.store}: {c.error}" for c in changes if c.error)]
    if not status.ok:
        warnings.append(status.verdict)
    return {
        "agent_version": agent_version,
        "os": os_name,
        "trusted": trusted[:500],
        "warnings": [w[:500] for w in warnings[:100]],
    }
