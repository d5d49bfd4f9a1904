"""The portal in a real browser: Debian's Chromium driven by Playwright (no browser download).

Signs in, changes the one-time password, sees (or not) the expiry modal, opens Policy > TLS/SSL
Interception, downloads the root and compares it byte for byte with ``tlsgate ca export``; a form post
without its CSRF token is refused. Screenshots go to test-artifacts/portal/.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tlsgate.ca import CertificateAuthority
from tlsgate.portal import PortalSettings, build_portal_server

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "portal"
NEW_PASSWORD = "a long browser password"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningPortal:
    def __init__(self, data_dir: Path, ca_days: int) -> None:
        CertificateAuthority.init(data_dir / "ca", days=ca_days)
        self.data_dir = data_dir
        self.announced: list[str] = []
        self.settings = PortalSettings(data_dir=data_dir, port=_free_port(), announce=self.announced.append)
        self.server = build_portal_server(self.settings, log_level="warning")
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> RunningPortal:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the portal did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def url(self) -> str:
        return self.settings.base_url

    @property
    def password(self) -> str:
        match = re.search(r"one-time password: (\S+)", "\n".join(self.announced))
        assert match
        return match.group(1)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (the browser test never downloads one)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


def _sign_in(page: object, portal: RunningPortal, shot: str) -> None:
    page.goto(portal.url + "/")  # type: ignore[attr-defined]
    assert page.url.endswith("/login")  # type: ignore[attr-defined]
    page.screenshot(path=ARTIFACTS / f"{shot}-login.png", full_page=True)  # type: ignore[attr-defined]
    page.fill("input[name=username]", "admin")  # type: ignore[attr-defined]
    page.fill("input[name=password]", portal.password)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_url("**/account/password")  # type: ignore[attr-defined]
    page.fill("input[name=current]", portal.password)  # type: ignore[attr-defined]
    page.fill("input[name=new]", NEW_PASSWORD)  # type: ignore[attr-defined]
    page.fill("input[name=confirm]", NEW_PASSWORD)  # type: ignore[attr-defined]
    page.click("main button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_url(portal.url + "/")  # type: ignore[attr-defined]


def test_expiring_root_download_and_csrf(browser: object, tmp_path: Path) -> None:
    with RunningPortal(tmp_path / "data", ca_days=10) as portal:
        context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
        page = context.new_page()
        _sign_in(page, portal, "10-days")
        modal = page.locator("#expiry-modal")
        modal.wait_for(state="visible")
        assert "expires in 9 days" in modal.inner_text() or "expires in 10 days" in modal.inner_text()
        page.screenshot(path=ARTIFACTS / "10-days-dashboard-expiry-modal.png", full_page=True)
        # Dismiss is a form post answered by a redirect: wait for that navigation, not for the
        # already-loaded page's load state (which raced the post in CI).
        with page.expect_navigation(url=portal.url + "/"):
            modal.get_by_role("button", name="Dismiss").click()
        page.wait_for_load_state()
        assert page.locator("#expiry-modal").count() == 0
        page.screenshot(path=ARTIFACTS / "10-days-dashboard.png", full_page=True)

        page.get_by_role("link", name="TLS/SSL Interception").first.click()
        page.wait_for_url("**/policy/tls")
        assert page.get_by_role("heading", name="TLS/SSL Interception").is_visible()
        page.screenshot(path=ARTIFACTS / "10-days-tls-interception.png", full_page=True)
        with page.expect_download() as info:
            page.click("#download-root-pem")
        downloaded = Path(info.value.path()).read_bytes()
        assert info.value.suggested_filename == "tlsgate-root.pem"
        script = Path(sys.executable).with_name("tlsgate")
        cli = [str(script)] if script.exists() else [sys.executable, "-c", "from tlsgate.cli import main; main()"]
        exported = subprocess.run(
            [*cli, "--data-dir", str(portal.data_dir), "ca", "export"], capture_output=True, check=True
        ).stdout
        assert downloaded == exported
        assert downloaded.startswith(b"-----BEGIN CERTIFICATE-----")

        refused = context.request.post(portal.url + "/policy/tls/do-not-inspect", form={"hosts": "evil.test"})
        assert refused.status == 403
        page.goto(portal.url + "/policy/tls")
        assert "evil.test" not in page.locator("textarea[name=hosts]").input_value()
        page.goto(portal.url + "/policy/tls/renew")
        page.screenshot(path=ARTIFACTS / "10-days-renew-confirm.png", full_page=True)
        for path in ("/endpoints", "/tokens", "/admin/status-posts", "/audit", "/status"):
            page.goto(portal.url + path)
            page.screenshot(path=ARTIFACTS / f"10-days{path.replace('/', '-')}.png", full_page=True)
        assert "ca.renew" not in page.content()
        context.close()


def test_no_modal_for_a_root_with_ten_years_left(browser: object, tmp_path: Path) -> None:
    with RunningPortal(tmp_path / "data", ca_days=3650) as portal:
        context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
        page = context.new_page()
        _sign_in(page, portal, "10-years")
        assert page.locator("#expiry-modal").count() == 0
        page.screenshot(path=ARTIFACTS / "10-years-dashboard.png", full_page=True)
        page.goto(portal.url + "/policy/tls")
        assert page.locator("#expiry-modal").count() == 0
        page.screenshot(path=ARTIFACTS / "10-years-tls-interception.png", full_page=True)
        context.close()
