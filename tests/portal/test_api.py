from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from sqlalchemy import select

from conftest import Portal
from tlsgate.ca import ExportFormat, export_certificates, exported_versions
from tlsgate.portal.tokens import issue_api_token, issue_enrollment_token
from tlsgate.store import AuditEntry


def _tokens(portal: Portal) -> tuple[str, str]:
    with portal.store.session() as session:
        api, _ = issue_api_token(session, "ci", "admin", portal.clock(), None)
        enroll, _ = issue_enrollment_token(session, "laptops", "admin", portal.clock(), None, None)
    return api, enroll


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _enroll(portal: Portal, enroll_token: str, hostname: str) -> tuple[str, str]:
    response = portal.client.post(
        "/api/v1/enroll", json={"hostname": hostname, "os": "debian 12"}, headers=_bearer(enroll_token)
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["endpoint_id"], body["credential"]


def _trusted(portal: Portal, version_index: int = -1) -> dict[str, str]:
    version = portal.ca.root.versions[version_index]
    return {"subject": version.subject, "spki_sha256": version.spki_sha256, "not_after": version.not_after.isoformat()}


def test_ca_set_is_public(portal: Portal) -> None:
    body = portal.client.get("/api/v1/ca").json()
    assert body["current_root"] == portal.ca.root.id
    assert body["versions"][0]["certificate_pem"].startswith("-----BEGIN CERTIFICATE-----")
    for fmt in ExportFormat:
        response = portal.client.get(f"/api/v1/ca/certificates?format={fmt.value}")
        expected = export_certificates(
            tuple(v.cert for v in exported_versions(portal.ca, portal.clock(), all_versions=False)), fmt
        )
        assert response.content == expected


def test_enroll_and_check_in(portal: Portal) -> None:
    api, enroll = _tokens(portal)
    endpoint_id, credential = _enroll(portal, enroll, "laptop-1")
    checkins = f"/api/v1/endpoints/{endpoint_id}/checkins"
    response = portal.client.post(checkins, json={"agent_version": "1.0", "trusted": []}, headers=_bearer(credential))
    assert response.json()["state"] == "at-risk"
    response = portal.client.post(
        checkins, json={"agent_version": "1.1", "trusted": [_trusted(portal)]}, headers=_bearer(credential)
    )
    assert response.json()["state"] == "ready"
    assert response.json()["ca"]["current_root"] == portal.ca.root.id
    # Renew in place (API, admin token): the endpoint holding only v1 is now at risk, although its key matches.
    assert portal.client.post("/api/v1/ca/renew", json={"days": 7300}, headers=_bearer(api)).status_code == 200
    assert (
        portal.client.get(f"/api/v1/endpoints/{endpoint_id}", headers=_bearer(credential)).json()["state"] == "at-risk"
    )
    # Trusting the renewed version — matched by subject + key, no fingerprint sent — makes it ready.
    response = portal.client.post(
        checkins, json={"trusted": [_trusted(portal, 0), _trusted(portal, -1)]}, headers=_bearer(credential)
    )
    assert response.json()["state"] == "ready"
    fleet = portal.client.get("/api/v1/fleet", headers=_bearer(api)).json()
    assert fleet == {"total": 1, "ready": 1, "at_risk": 0, "stale": 0, "days_left": fleet["days_left"]}
    portal.clock.advance(hours=25)
    assert portal.client.get(f"/api/v1/endpoints/{endpoint_id}", headers=_bearer(api)).json()["state"] == "stale"
    history = portal.client.get(f"{checkins}?limit=10", headers=_bearer(credential)).json()
    assert len(history) == 3
    actions = {e["action"] for e in portal.client.get("/api/v1/audit", headers=_bearer(api)).json()}
    assert {"endpoint.enroll", "ca.renew"} <= actions


def test_endpoints_page_lists_readiness(portal: Portal) -> None:
    _, enroll = _tokens(portal)
    endpoint_id, credential = _enroll(portal, enroll, "ready-host")
    portal.client.post(
        f"/api/v1/endpoints/{endpoint_id}/checkins", json={"trusted": [_trusted(portal)]}, headers=_bearer(credential)
    )
    _enroll(portal, enroll, "silent-host")
    portal.sign_in()
    page = portal.client.get("/endpoints").text
    assert "ready-host" in page
    assert "silent-host" in page
    assert "never checked in" in page
    assert "root v1" in page
    assert "silent-host" not in portal.client.get("/endpoints?state=ready").text


def test_unauthenticated_and_wrong_tokens(portal: Portal) -> None:
    api, enroll = _tokens(portal)
    _, credential = _enroll(portal, enroll, "h")
    admin_only = [
        ("get", "/api/v1/endpoints"),
        ("get", "/api/v1/audit"),
        ("get", "/api/v1/do-not-inspect"),
        ("get", "/api/v1/fleet"),
    ]
    for method, path in admin_only:
        assert getattr(portal.client, method)(path).status_code == 401
        response = getattr(portal.client, method)(path, headers=_bearer("tga_wrong"))
        assert response.status_code == 401
        assert response.json()["error"]["status"] == 401
        assert getattr(portal.client, method)(path, headers=_bearer(credential)).status_code == 403
        assert getattr(portal.client, method)(path, headers=_bearer(enroll)).status_code == 403
    assert portal.client.post("/api/v1/ca/renew", json={}, headers=_bearer(credential)).status_code == 403
    assert portal.client.post("/api/v1/enroll", json={"hostname": "x"}).status_code == 401
    assert portal.client.post("/api/v1/enroll", json={"hostname": "x"}, headers=_bearer(api)).status_code == 403
    assert portal.client.post("/api/v1/enroll", json={"hostname": "x"}, headers=_bearer("tgn_nope")).status_code == 401
    assert len(portal.ca.root.versions) == 1


def test_an_endpoint_cannot_reach_another(portal: Portal) -> None:
    _, enroll = _tokens(portal)
    a, a_credential = _enroll(portal, enroll, "a")
    b, b_credential = _enroll(portal, enroll, "b")
    portal.client.post(f"/api/v1/endpoints/{b}/checkins", json={"warnings": ["secret"]}, headers=_bearer(b_credential))
    assert portal.client.get(f"/api/v1/endpoints/{b}", headers=_bearer(a_credential)).status_code == 403
    assert portal.client.get(f"/api/v1/endpoints/{b}/checkins", headers=_bearer(a_credential)).status_code == 403
    response = portal.client.post(
        f"/api/v1/endpoints/{b}/checkins", json={"trusted": []}, headers=_bearer(a_credential)
    )
    assert response.status_code == 403
    assert portal.client.delete(f"/api/v1/endpoints/{b}", headers=_bearer(a_credential)).status_code == 403
    assert len(portal.client.get(f"/api/v1/endpoints/{b}/checkins", headers=_bearer(b_credential)).json()) == 1
    assert portal.client.get(f"/api/v1/endpoints/{a}", headers=_bearer(a_credential)).status_code == 200


def test_enrollment_token_limits(portal: Portal) -> None:
    with portal.store.session() as session:
        once, _ = issue_enrollment_token(session, "once", "admin", portal.clock(), None, 1)
        soon, _ = issue_enrollment_token(
            session, "soon", "admin", portal.clock(), portal.clock() + timedelta(hours=1), None
        )
    _enroll(portal, once, "first")
    assert portal.client.post("/api/v1/enroll", json={"hostname": "second"}, headers=_bearer(once)).status_code == 401
    portal.clock.advance(hours=2)
    assert portal.client.post("/api/v1/enroll", json={"hostname": "late"}, headers=_bearer(soon)).status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/v1/ca/renew", {"days": 0}),
        ("post", "/api/v1/ca/renew", {"days": "many"}),
        ("post", "/api/v1/ca/rotate", {"key_type": "dsa-512"}),
        ("post", "/api/v1/ca/rotate", {"subject": "no common name"}),
        ("put", "/api/v1/do-not-inspect", {"hosts": ["bad host"]}),
        ("put", "/api/v1/do-not-inspect", {"hosts": "x"}),
        ("post", "/api/v1/status-posts", {"title": ""}),
        ("post", "/api/v1/enrollment-tokens", {"name": "x", "extra": 1}),
        ("post", "/api/v1/status-posts", {"title": "\x00"}),  # PostgreSQL refuses NUL in text: never a 500
        ("put", "/api/v1/do-not-inspect", {"hosts": ["bank\x00.test"]}),
        ("post", "/api/v1/status-posts", {"title": "x", "body": "y" * (1024 * 1024 + 1)}),
    ],
)
def test_bad_input_is_a_json_4xx(portal: Portal, method: str, path: str, body: object) -> None:
    api, _ = _tokens(portal)
    response = getattr(portal.client, method)(path, json=body, headers=_bearer(api))
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["status"] == response.status_code


def test_admin_api_operations_are_audited(portal: Portal) -> None:
    api, _ = _tokens(portal)
    assert portal.client.put("/api/v1/do-not-inspect", json={"hosts": ["bank.test"]}, headers=_bearer(api)).json() == {
        "hosts": ["bank.test"]
    }
    created = portal.client.post("/api/v1/enrollment-tokens", json={"name": "m", "max_uses": 5}, headers=_bearer(api))
    assert created.json()["token"].startswith("tgn_")
    assert (
        portal.client.post("/api/v1/status-posts", json={"title": "Renewal"}, headers=_bearer(api)).status_code == 201
    )
    assert portal.client.get("/api/v1/status-posts").json()[0]["title"] == "Renewal"
    rotated = portal.client.post("/api/v1/ca/rotate", json={"days": 3650}, headers=_bearer(api))
    assert rotated.json()["current_root"] == portal.ca.root.id
    with portal.store.session() as session:
        entries = session.scalars(select(AuditEntry)).all()
    by_action = {e.action: e for e in entries}
    for action in ("policy.do-not-inspect", "token.enrollment.create", "status-post.create", "ca.rotate"):
        assert by_action[action].actor.startswith("api-token:")
        assert by_action[action].at == portal.clock()


def test_nothing_is_stored_from_a_refused_request(portal: Portal) -> None:
    api, _ = _tokens(portal)
    refused = portal.client.post("/api/v1/status-posts", json={"title": "a\x00b"}, headers=_bearer(api))
    assert refused.status_code == 400
    assert refused.json() == {"error": {"status": 400, "message": "request contains a NUL character"}}
    assert portal.client.get("/api/v1/status-posts").json() == []


def test_the_ca_set_carries_cross_certificates_after_a_rotation(portal: Portal) -> None:
    """Agents follow a rotation only through the cross-certificate: the public CA set must carry it."""
    api, _ = _tokens(portal)
    old = portal.ca.root.id
    assert portal.client.get("/api/v1/ca").json()["crosses"] == []
    assert portal.client.post("/api/v1/ca/rotate", json={"days": 3650}, headers=_bearer(api)).status_code == 200
    body = portal.client.get("/api/v1/ca").json()
    (cross,) = body["crosses"]
    assert cross["issuer_identity"] == old
    assert cross["subject_identity"] == body["current_root"]
    cert = x509.load_pem_x509_certificate(cross["certificate_pem"].encode())
    assert cert.subject == portal.ca.root.current.cert.subject
    assert cert.issuer == portal.ca.identity(old).current.cert.subject
