"""Debian's Chromium, headless, through the proxy, trusting our root from its NSS database:
an HTTPS page from a local origin loads with no certificate error."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from badssl import BadSSL
from proxy_fixtures import ProxyThread, badssl, chromium, issuer, proxy, tlsgate_ca

pytestmark = pytest.mark.integration
__all__ = ["badssl", "issuer", "proxy", "tlsgate_ca"]


@pytest.fixture
def browser_home(tmp_path: Path, tlsgate_ca: tuple[Path, Path]) -> Path:
    nssdb = tmp_path / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True, capture_output=True)
    subprocess.run(
        ["certutil", "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "tlsgate", "-i", str(tlsgate_ca[1])],
        check=True,
        capture_output=True,
    )
    return tmp_path


def test_chromium_loads_an_intercepted_page(browser_home: Path, proxy: ProxyThread, badssl: BadSSL) -> None:
    result = chromium(browser_home, proxy, badssl.url("good", "/from-chromium"))
    assert "hello from good /from-chromium" in result.stdout, result.stderr[-2000:]
    assert "ERR_CERT" not in result.stdout + result.stderr
    event = proxy.wait_for_event(lambda e: e.path == "/from-chromium")
    assert event.status == 200
    assert event.scheme == "https"


def test_chromium_sees_our_error_page_for_a_broken_origin(
    browser_home: Path, proxy: ProxyThread, badssl: BadSSL
) -> None:
    result = chromium(browser_home, proxy, badssl.url("expired", "/"))
    assert "certificate expired" in result.stdout, result.stderr[-2000:]
