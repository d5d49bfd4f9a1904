"""The agent end to end: Chromium trusts the proxy's leaves only through the NSS database the agent filled."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from badssl import BadSSL
from proxy_fixtures import ProxyThread, badssl, chromium, issuer, proxy, tlsgate_ca

pytestmark = pytest.mark.integration
__all__ = ["badssl", "issuer", "proxy", "tlsgate_ca"]


def test_chromium_trusts_the_gateway_after_the_agent_installed_the_root(
    tmp_path: Path, tlsgate_ca: tuple[Path, Path], proxy: ProxyThread, badssl: BadSSL
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    url = badssl.url("good", "/via-agent")
    before = chromium(home, proxy, url)  # a fresh profile: our root is nowhere
    assert "hello from good" not in before.stdout
    assert "ERR_CERT_AUTHORITY_INVALID" in before.stdout + before.stderr

    installed = subprocess.run(
        [sys.executable, "-m", "tlsgate", "--data-dir", str(tmp_path / "agent"), "agent", "install",
         "--cert", str(tlsgate_ca[1]), "--home", str(home), "--store", "nss"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    assert f"nss:{home / '.pki/nssdb'}: install 1" in installed.stdout

    after = chromium(home, proxy, url)
    assert "hello from good /via-agent" in after.stdout, after.stderr[-2000:]
    assert "ERR_CERT" not in after.stdout
