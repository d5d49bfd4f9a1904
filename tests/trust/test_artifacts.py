"""Installers for endpoints without the agent: each embeds exactly the public root versions it claims."""

from __future__ import annotations

import base64
import json
import os
import plistlib
import re
import stat
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from support.tools import require_tool
from tlsgate.trust import artifacts


def test_macos_script_checks_fingerprints_then_calls_security(make_ca, tmp_path: Path) -> None:
    require_tool("openssl")
    ca = make_ca()
    ca.renew()
    certs = [v.cert for v in ca.root.versions]
    script = tmp_path / "install.sh"
    script.write_text(artifacts.macos_shell(certs))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_security = bin_dir / "security"  # macOS's tool, played by a recorder on Linux
    fake_security.write_text(
        f'#!/bin/sh\necho "$@" >> {tmp_path}/calls\nfor last; do :; done\ncat "$last" >> {tmp_path}/installed.pem\n'
    )
    fake_security.chmod(fake_security.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(["sh", str(script)], capture_output=True, env=env, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == 2
    assert calls[0].startswith("add-trusted-cert -d -r trustRoot -p ssl -p basic -k /Library/Keychains/System.keychain")
    installed = (tmp_path / "installed.pem").read_bytes()
    assert installed == b"".join(c.public_bytes(Encoding.PEM) for c in certs)

    tampered = tmp_path / "tampered.sh"
    text = script.read_text()
    fingerprint = re.search(r"check \"\$tmp/root0.pem\" ([0-9a-f]{64})", text)
    assert fingerprint
    tampered.write_text(text.replace(fingerprint[1], "0" * 64))
    (tmp_path / "calls").unlink()
    bad = subprocess.run(["sh", str(tampered)], capture_output=True, env=env, timeout=60, check=False)
    assert bad.returncode == 1
    assert b"fingerprint mismatch" in bad.stderr
    assert not (tmp_path / "calls").exists()


def test_mobileconfig_carries_each_version_as_a_root_payload(make_ca) -> None:
    ca = make_ca()
    ca.renew()
    certs = [v.cert for v in ca.root.versions]
    profile = plistlib.loads(artifacts.apple_mobileconfig(certs))
    assert profile["PayloadType"] == "Configuration"
    payloads = profile["PayloadContent"]
    assert [p["PayloadType"] for p in payloads] == ["com.apple.security.root"] * 2
    assert [p["PayloadContent"] for p in payloads] == [c.public_bytes(Encoding.DER) for c in certs]
    assert len({p["PayloadUUID"] for p in payloads}) == 2
    # Re-issued for the same CA, the profile keeps its identifier, so devices replace rather than add it.
    again = plistlib.loads(artifacts.apple_mobileconfig(certs))
    assert again["PayloadUUID"] == profile["PayloadUUID"]


def test_powershell_embeds_certificates_with_their_thumbprints(make_ca) -> None:
    ca = make_ca()
    cert = ca.root.current.cert
    script = artifacts.windows_powershell([cert])
    (thumb, b64) = re.findall(r"Thumbprint = '([0-9A-F]{40})'; Base64 = '([A-Za-z0-9+/=]+)'", script)[0]
    assert base64.b64decode(b64) == cert.public_bytes(Encoding.DER)
    assert thumb == cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - Windows thumbprints are SHA-1
    assert "X509Store('Root', 'LocalMachine')" in script
    assert "PRIVATE" not in script


def test_firefox_policies(make_ca) -> None:
    cert = make_ca().root.current.cert
    policy = json.loads(artifacts.firefox_policies([cert]))
    assert policy["policies"]["Certificates"]["ImportEnterpriseRoots"] is True
    assert policy["policies"]["Certificates"]["Install"] == [artifacts.firefox_cert_name(cert)]
