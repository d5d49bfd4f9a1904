from __future__ import annotations

import pytest
from sqlalchemy import select

from conftest import PASSWORD, Portal, PortalFactory, csrf_of
from tlsgate.ca import ExportFormat, export_certificates, exported_versions
from tlsgate.store import AuditEntry, CAVersionRecord, Notification, do_not_inspect_hosts
from tlsgate.trust import artifacts


def _audit(portal: Portal) -> list[AuditEntry]:
    with portal.store.session() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_tls_page_shows_every_version(portal: Portal) -> None:
    portal.sign_in()
    page = portal.client.get("/policy/tls").text
    version = portal.ca.root.current
    assert "TLS/SSL Interception" in page
    assert version.subject in page
    assert version.spki_sha256 in page
    colon = ":".join(version.sha256[i : i + 2] for i in range(0, 64, 2)).upper()
    assert colon in page
    assert ":".join(version.sha1[i : i + 2] for i in range(0, 40, 2)).upper() in page
    assert "BEGIN PRIVATE KEY" not in page
    with portal.store.session() as session:
        records = session.scalars(select(CAVersionRecord)).all()
    assert [r.sha256 for r in records] == [version.sha256]
    assert records[0].is_current_root


@pytest.mark.parametrize(
    ("name", "fmt", "all_versions"),
    [
        ("root.pem", ExportFormat.PEM, False),
        ("root.der", ExportFormat.DER, False),
        ("bundle.pem", ExportFormat.PEM, True),
        ("bundle.p7b", ExportFormat.P7B, True),
    ],
)
def test_downloads_are_the_cli_export(portal: Portal, name: str, fmt: ExportFormat, all_versions: bool) -> None:
    token = portal.sign_in()
    portal.client.post("/policy/tls/renew", data={"csrf_token": token, "confirm": "yes", "days": "7300"})
    response = portal.client.get(f"/policy/tls/download/{name}")
    assert response.status_code == 200
    ca = portal.ca
    expected = export_certificates(
        tuple(v.cert for v in exported_versions(ca, portal.clock(), all_versions=all_versions)), fmt
    )
    assert response.content == expected
    assert "attachment" in response.headers["content-disposition"]
    assert b"PRIVATE" not in response.content


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("install.ps1", "ps1"), ("install-macos.sh", "macos.sh"), ("tlsgate.mobileconfig", "mobileconfig"),
     ("policies.json", "firefox-policies.json")],
)  # fmt: skip
def test_installers_are_offered_beside_the_root(portal: Portal, name: str, fmt: str) -> None:
    token = portal.sign_in()
    portal.client.post("/policy/tls/renew", data={"csrf_token": token, "confirm": "yes", "days": "7300"})
    page = portal.client.get("/policy/tls").text
    assert f'href="/policy/tls/download/{name}"' in page
    response = portal.client.get(f"/policy/tls/download/{name}")
    certs = tuple(v.cert for v in exported_versions(portal.ca, portal.clock(), all_versions=True))
    assert len(certs) == 2
    assert response.content == artifacts.INSTALLERS[fmt](certs)


def test_the_certificate_page_shows_the_communications_history(portal: Portal) -> None:
    portal.sign_in()
    with portal.store.session() as session:
        session.add(
            Notification(
                plan_item="abc@20270101T000000Z/reminder-1-week", channel="email", recipient="secops@example.test",
                state="failed", attempts=1, created_at=portal.clock(), sent_at=None, last_error="SMTP 451 try later",
                plan_key="abc@20270101T000000Z", subject="[tlsgate] ACTION REQUIRED: …",
            )
        )  # fmt: skip
    page = portal.client.get("/policy/tls").text
    assert "reminder-1-week" in page
    assert "secops@example.test" in page
    assert "SMTP 451 try later" in page


def test_download_needs_sign_in(portal: Portal) -> None:
    assert portal.client.get("/policy/tls/download/root.pem", follow_redirects=False).status_code == 303
    portal.sign_in()
    assert portal.client.get("/policy/tls/download/key.pem").status_code == 404


def test_renew_needs_confirmation_and_is_audited(portal: Portal) -> None:
    token = portal.sign_in()
    assert "I understand" in portal.client.get("/policy/tls/renew").text
    response = portal.client.post(
        "/policy/tls/renew", data={"csrf_token": token, "days": "100"}, follow_redirects=False
    )
    assert response.headers["location"] == "/policy/tls/renew"
    assert len(portal.ca.root.versions) == 1
    response = portal.client.post("/policy/tls/renew", data={"csrf_token": token, "days": "100", "confirm": "yes"})
    assert response.status_code == 200
    assert len(portal.ca.root.versions) == 2
    entry = next(e for e in _audit(portal) if e.action == "ca.renew")
    assert entry.actor == "admin"
    assert entry.detail["days"] == 100
    assert entry.at == portal.clock()


def test_rotate_is_audited_and_mirrored(portal: Portal) -> None:
    token = portal.sign_in()
    old = portal.ca.root.id
    portal.client.post("/policy/tls/rotate", data={"csrf_token": token, "days": "3650", "confirm": "yes"})
    assert portal.ca.root.id != old
    entry = next(e for e in _audit(portal) if e.action == "ca.rotate")
    assert entry.detail["from"] == old
    with portal.store.session() as session:
        current = session.scalars(select(CAVersionRecord).where(CAVersionRecord.is_current_root)).one()
    assert current.identity_id == portal.ca.root.id


def test_bad_form_values_are_4xx(portal: Portal) -> None:
    token = portal.sign_in()
    assert (
        portal.client.post("/policy/tls/renew", data={"csrf_token": token, "days": "-5", "confirm": "yes"}).status_code
        == 422
    )
    assert (
        portal.client.post(
            "/policy/tls/rotate", data={"csrf_token": token, "key_type": "dsa", "confirm": "yes"}
        ).status_code
        == 409
    )
    bad = portal.client.post("/policy/tls/do-not-inspect", data={"csrf_token": token, "hosts": "not a host!"})
    assert bad.status_code == 400


def test_do_not_inspect_list(portal: Portal) -> None:
    token = portal.sign_in()
    portal.client.post(
        "/policy/tls/do-not-inspect",
        data={"csrf_token": token, "hosts": "Bank.Example.\n*.pinned.test # app\n\n10.0.0.1"},
    )
    with portal.store.session() as session:
        assert do_not_inspect_hosts(session) == ["*.pinned.test", "10.0.0.1", "bank.example"]
    assert "*.pinned.test" in portal.client.get("/policy/tls").text
    portal.client.post("/policy/tls/do-not-inspect", data={"csrf_token": token, "hosts": "bank.example"})
    with portal.store.session() as session:
        assert do_not_inspect_hosts(session) == ["bank.example"]
    changes = [e.detail for e in _audit(portal) if e.action == "policy.do-not-inspect"]
    assert changes[-1] == {"added": [], "removed": ["*.pinned.test", "10.0.0.1"]}


def test_expiry_modal_for_a_root_expiring_soon(make_portal: PortalFactory) -> None:
    portal = make_portal(ca_days=10)
    token = portal.sign_in()
    page = portal.client.get("/").text
    assert 'id="expiry-modal"' in page
    assert "expires in" in page
    assert 'href="/policy/tls"' in page
    portal.client.post("/alerts/dismiss", data={"csrf_token": token, "next": "/"})
    assert 'id="expiry-modal"' not in portal.client.get("/").text


def test_no_expiry_modal_for_a_root_with_years_left(portal: Portal) -> None:
    portal.sign_in()
    assert 'id="expiry-modal"' not in portal.client.get("/").text


def test_expired_root_shows_the_modal(make_portal: PortalFactory) -> None:
    portal = make_portal(ca_days=10)
    portal.sign_in()
    portal.clock.advance(days=12)  # sessions last 12 hours: sign in again
    portal.sign_in(password=PASSWORD)
    assert "has expired" in portal.client.get("/").text


def test_status_page_is_public(portal: Portal) -> None:
    token = portal.sign_in()
    portal.client.post(
        "/admin/status-posts", data={"csrf_token": token, "title": "Root renewal on 1 May", "body": "Install it."}
    )
    portal.client.cookies.clear()
    page = portal.client.get("/status")
    assert page.status_code == 200
    assert "Root renewal on 1 May" in page.text
    assert any(e.action == "status-post.create" for e in _audit(portal))


def test_tokens_page_shows_the_secret_once(portal: Portal) -> None:
    token = portal.sign_in()
    created = portal.client.post("/tokens", data={"csrf_token": token, "kind": "enrollment", "name": "laptops"})
    assert "tgn_" in created.text
    listing = portal.client.get("/tokens").text
    assert "laptops" in listing
    assert csrf_of(listing)


def test_no_ca_yet(make_portal: PortalFactory) -> None:
    portal = make_portal(ca_days=None)
    portal.sign_in()
    assert "tlsgate ca init" in portal.client.get("/policy/tls").text
    assert portal.client.get("/policy/tls/download/root.pem").status_code == 404


@pytest.mark.parametrize("target", ["//evil.test/", "/\\evil.test", "https://evil.test/"])
def test_dismissing_the_alert_never_redirects_off_site(portal: Portal, target: str) -> None:
    token = portal.sign_in()
    response = portal.client.post("/alerts/dismiss", data={"csrf_token": token, "next": target}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
