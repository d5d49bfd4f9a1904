"""Portal tests: a data directory with a CA, the app over SQLite and a real PostgreSQL, a movable clock."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tlsgate.ca import CertificateAuthority
from tlsgate.portal import PortalSettings, create_app
from tlsgate.store import Store, open_store

PASSWORD = "correct horse battery staple"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@dataclass
class Portal:
    settings: PortalSettings
    store: Store
    client: TestClient
    clock: Clock
    announced: list[str] = field(default_factory=list)

    @property
    def ca(self) -> CertificateAuthority:
        return CertificateAuthority.load(self.settings.ca_dir, clock=self.clock)

    def one_time_password(self) -> str:
        match = re.search(r"one-time password: (\S+)", "\n".join(self.announced))
        assert match, self.announced
        return match.group(1)

    def sign_in(self, username: str = "admin", password: str | None = None, *, change_to: str = PASSWORD) -> str:
        """Sign in (changing the one-time password on the first go); returns the session's CSRF token."""
        page = self.client.get("/login")
        token = csrf_of(page.text)
        response = self.client.post(
            "/login",
            data={"username": username, "password": password or self.one_time_password(), "csrf_token": token},
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text
        if response.headers["location"] == "/account/password":
            form = self.client.get("/account/password")
            response = self.client.post(
                "/account/password",
                data={
                    "csrf_token": csrf_of(form.text),
                    "current": password or self.one_time_password(),
                    "new": change_to,
                    "confirm": change_to,
                },
                follow_redirects=False,
            )
            assert response.status_code == 303, response.text
        return csrf_of(self.client.get("/").text)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:2000]
    return match.group(1)


PortalFactory = Callable[..., Portal]


@pytest.fixture
def make_portal(tmp_path: Path, database_url: str) -> Iterator[PortalFactory]:
    made: list[Portal] = []

    def make(*, ca_days: int | None = 3650, **overrides: object) -> Portal:
        clock = Clock()
        data_dir = tmp_path / "data"
        if ca_days is not None and not CertificateAuthority.exists(data_dir / "ca"):
            CertificateAuthority.init(data_dir / "ca", days=ca_days, clock=clock)
        announced: list[str] = []
        settings = PortalSettings(
            data_dir=data_dir,
            database_url=database_url,
            clock=clock,
            announce=announced.append,
            **overrides,  # type: ignore[arg-type]
        )
        store = open_store(database_url)
        client = TestClient(create_app(settings, store=store), base_url="http://127.0.0.1:8180")
        portal = Portal(settings, store, client, clock, announced)
        made.append(portal)
        return portal

    yield make
    for portal in made:
        portal.client.close()
        portal.store.dispose()


@pytest.fixture
def portal(make_portal: PortalFactory) -> Portal:
    return make_portal()
