from __future__ import annotations

from sqlalchemy import select

from conftest import PASSWORD, Portal, PortalFactory, csrf_of
from tlsgate.store import AuditEntry


def _login(portal: Portal, username: str, password: str) -> int:
    token = csrf_of(portal.client.get("/login").text)
    response = portal.client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}, follow_redirects=False
    )
    return response.status_code


def test_first_start_prints_a_one_time_password_once(make_portal: PortalFactory) -> None:
    first = make_portal()
    assert len(first.one_time_password()) >= 16
    second = make_portal()
    assert second.announced == []


def test_pages_need_sign_in(portal: Portal) -> None:
    response = portal.client.get("/policy/tls", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/policy/tls"


def test_sign_in_forces_a_password_change_then_works(portal: Portal) -> None:
    portal.sign_in()
    assert portal.client.get("/policy/tls").status_code == 200
    portal.client.cookies.clear()
    assert _login(portal, "admin", portal.one_time_password()) == 401  # the one-time password is gone
    assert _login(portal, "admin", PASSWORD) == 303


def test_wrong_password_and_lockout(portal: Portal) -> None:
    password = portal.one_time_password()
    for _ in range(5):
        assert _login(portal, "admin", "nope") == 401
    assert _login(portal, "admin", password) == 401  # locked, even with the right password
    page = portal.client.get("/login")
    token = csrf_of(page.text)
    locked = portal.client.post("/login", data={"username": "admin", "password": password, "csrf_token": token})
    assert "Too many failed sign-ins" in locked.text
    portal.clock.advance(minutes=16)
    assert _login(portal, "admin", password) == 303
    with portal.store.session() as session:
        actions = [e.action for e in session.scalars(select(AuditEntry))]
    assert actions.count("sign-in.failed") == 5
    assert "sign-in.locked" in actions
    assert "sign-in" in actions


def test_unknown_users_are_locked_out_too(portal: Portal) -> None:
    for _ in range(6):
        assert _login(portal, "mallory", "x") == 401
    assert (
        "Too many failed sign-ins"
        in portal.client.post(
            "/login",
            data={"username": "mallory", "password": "x", "csrf_token": csrf_of(portal.client.get("/login").text)},
        ).text
    )


def test_sign_in_form_needs_its_csrf_token(portal: Portal) -> None:
    portal.client.get("/login")
    response = portal.client.post("/login", data={"username": "admin", "password": portal.one_time_password()})
    assert response.status_code == 403


def test_forms_without_csrf_token_are_refused(portal: Portal) -> None:
    token = portal.sign_in()
    for path, data in [
        ("/policy/tls/do-not-inspect", {"hosts": "bank.test"}),
        ("/policy/tls/renew", {"confirm": "yes"}),
        ("/logout", {}),
        ("/tokens", {"kind": "api", "name": "x"}),
    ]:
        assert portal.client.post(path, data=data).status_code == 403
        assert portal.client.post(path, data={**data, "csrf_token": token + "x"}).status_code == 403
    assert len(portal.ca.root.versions) == 1
    cross = portal.client.post(
        "/policy/tls/do-not-inspect",
        data={"hosts": "a.test", "csrf_token": token},
        headers={"Origin": "https://evil.test"},
    )
    assert cross.status_code == 403


def test_logout_ends_the_session(portal: Portal) -> None:
    token = portal.sign_in()
    cookie = portal.client.cookies.get("tlsgate_session")
    assert portal.client.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    portal.client.cookies.set("tlsgate_session", cookie)  # replaying the old cookie does not work
    assert portal.client.get("/", follow_redirects=False).status_code == 303


def test_open_redirect_is_refused(portal: Portal) -> None:
    token = csrf_of(portal.client.get("/login").text)
    response = portal.client.post(
        "/login",
        data={"username": "admin", "password": portal.one_time_password(), "csrf_token": token, "next": "//evil.test/"},
        follow_redirects=False,
    )
    assert response.headers["location"] in ("/", "/account/password")


def test_a_one_time_password_only_opens_the_password_change(portal: Portal) -> None:
    assert _login(portal, "admin", portal.one_time_password()) == 303
    page = portal.client.get("/tokens", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/account/password"
    form = portal.client.get("/account/password")
    assert form.status_code == 200
    refused = portal.client.post(
        "/tokens", data={"csrf_token": csrf_of(form.text), "kind": "api", "name": "sneaky"}, follow_redirects=False
    )
    assert refused.status_code == 403
    assert "change your one-time password first" in refused.text
    changed = portal.client.post(
        "/account/password",
        data={
            "csrf_token": csrf_of(form.text),
            "current": portal.one_time_password(),
            "new": PASSWORD,
            "confirm": PASSWORD,
        },
        follow_redirects=False,
    )
    assert changed.status_code == 303
    assert portal.client.get("/tokens", follow_redirects=False).status_code == 200
