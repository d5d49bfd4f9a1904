"""enroll / sync against a portal played by httpx.MockTransport, with real stores in a folder."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import pytest

from tlsgate.agent import service
from tlsgate.agent.portal import PortalClient, PortalError
from tlsgate.agent.state import AgentFiles
from tlsgate.ca import CertificateAuthority, describe_version
from tlsgate.trust import DebianStore, NssStore, cert_sha256


class FakePortal:
    """Serves a CA's public set the way /api/v1 does, and records check-ins."""

    def __init__(self, ca: CertificateAuthority) -> None:
        self.ca = ca
        self.checkins: list[dict] = []
        self.down = False
        self.extra_roots: list = []

    def ca_set(self) -> dict:
        now = self.ca.clock()
        versions = [
            {**describe_version(v, now, current=self.ca.is_current(v)), "certificate_pem": v.pem.decode()}
            for i in self.ca.identities
            for v in i.versions
        ]
        versions += [{"role": "root", "certificate_pem": pem} for pem in self.extra_roots]
        crosses = [{"certificate_pem": c.pem.decode()} for c in self.ca.crosses]
        return {"current_root": self.ca.root.id, "issuer": self.ca.issuer.id, "versions": versions, "crosses": crosses}

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused")
        if request.url.path == "/api/v1/ca":
            return httpx.Response(200, json=self.ca_set())
        if request.url.path == "/api/v1/enroll":
            if request.headers.get("Authorization") != "Bearer tgn_good":
                return httpx.Response(401, json={"error": {"status": 401, "message": "unknown token"}})
            return httpx.Response(201, json={"endpoint_id": "ep-1", "credential": "tgc_secret", "checkin_url": "x"})
        if request.url.path == "/api/v1/endpoints/ep-1/checkins":
            assert request.headers["Authorization"] == "Bearer tgc_secret"
            self.checkins.append(json.loads(request.content))
            return httpx.Response(
                200, json={"state": "ready", "reason": "trusts a version valid past expiry", "ca": None}
            )
        return httpx.Response(404, json={"error": {"status": 404, "message": "no route"}})

    def client(self) -> PortalClient:
        return PortalClient("https://portal.test", transport=httpx.MockTransport(self.handler))


@pytest.fixture
def setup(make_ca, clock, tmp_path: Path):
    ca = make_ca(clock=clock, days=30)
    portal = FakePortal(ca)
    files = AgentFiles(tmp_path / "agent")
    stores = [DebianStore(tmp_path / "root"), NssStore(tmp_path / "home/.pki/nssdb")]
    return ca, portal, files, stores


def do_enroll(portal: FakePortal, files: AgentFiles, **kwargs):
    return service.enroll(
        files, portal.client(), "https://portal.test", "tgn_good", hostname="pc1", os_name="Debian", agent_version="t",
        **kwargs,
    )  # fmt: skip


def do_sync(portal: FakePortal, files: AgentFiles, stores, clock, **kwargs):
    state = files.load()
    return service.sync(
        files, state, portal.client(), stores, agent_version="t", os_name="Debian", clock=clock, **kwargs
    )


def test_enroll_remembers_the_ca_identity_and_keeps_the_credential_private(setup) -> None:
    ca, portal, files, _ = setup
    state = do_enroll(portal, files)
    assert state.identities[0].spki_sha256 == ca.root.id
    assert stat.S_IMODE((files.directory / "credential").stat().st_mode) == 0o600
    assert files.credential() == "tgc_secret"


def test_enroll_with_a_pinned_key_refuses_another_ca(setup) -> None:
    _, portal, files, _ = setup
    with pytest.raises(PortalError, match="not the expected"):
        do_enroll(portal, files, expect_spki="ab" * 32)
    assert files.load() is None


def test_enroll_with_a_bad_token(setup) -> None:
    _, portal, files, _ = setup
    with pytest.raises(PortalError, match=r"401.*unknown token"):
        service.enroll(files, portal.client(), "https://p", "tgn_bad", hostname="h", os_name="", agent_version="")


def test_sync_installs_checks_in_and_is_idempotent(setup, clock) -> None:
    ca, portal, files, stores = setup
    do_enroll(portal, files)
    ca.renew(days=3650)
    report = do_sync(portal, files, stores, clock)
    assert [len(c.plan.install) for c in report.changes] == [2, 2]
    assert report.status.ok
    assert report.readiness == {"state": "ready", "reason": "trusts a version valid past expiry"}
    trusted = portal.checkins[-1]["trusted"]
    assert {t["sha256"] for t in trusted} == {v.sha256 for v in ca.root.versions}
    assert {t["store"].split(":")[0] for t in trusted} == {"debian", "nss"}
    again = do_sync(portal, files, stores, clock)
    assert not any(c.plan.changes for c in again.changes)


def test_dry_run_changes_nothing(setup, clock, tmp_path: Path) -> None:
    _, portal, files, stores = setup
    do_enroll(portal, files)
    report = do_sync(portal, files, stores, clock, dry_run=True)
    assert [len(c.plan.install) for c in report.changes] == [1, 1]
    assert stores[0].certificates() == []
    assert portal.checkins == []


def test_a_portal_outage_keeps_the_last_good_ca_set(setup, clock) -> None:
    _, portal, files, stores = setup
    do_enroll(portal, files)
    portal.down = True
    report = do_sync(portal, files, stores, clock)
    assert "cannot reach the portal" in report.portal_error
    assert report.status.ok  # installed from the CA set saved at enrollment


def test_a_foreign_root_from_the_portal_is_refused_reported_and_not_installed(setup, make_ca, clock) -> None:
    _, portal, files, stores = setup
    do_enroll(portal, files)
    impostor = make_ca(clock=clock).root.current
    portal.extra_roots.append(impostor.pem.decode())
    report = do_sync(portal, files, stores, clock)
    assert len(report.refused) == 1
    for store in stores:
        assert impostor.sha256 not in {cert_sha256(c) for c in store.certificates()}
    assert any("not a version of the enrolled CA identity" in w for w in portal.checkins[-1]["warnings"])


def test_a_rotation_is_followed_through_the_cross_certificate(setup, clock) -> None:
    ca, portal, files, stores = setup
    do_enroll(portal, files)
    ca.rotate()
    report = do_sync(portal, files, stores, clock)
    assert report.refused == ()
    assert {i.spki_sha256 for i in files.load().identities} == {r.id for r in ca.roots()}
    assert ca.root.current.sha256 in {cert_sha256(c) for c in stores[0].certificates()}


def test_the_agent_refuses_a_clear_text_portal() -> None:
    with pytest.raises(PortalError, match="must be https"):
        PortalClient("http://portal.test")
