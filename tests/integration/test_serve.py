"""``tlsgate serve``: the whole gateway as a user starts it — proxy, portal, live CA and policy changes, shutdown."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from badssl import Origin, make_ca, make_leaf, server_context
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from proxy_fixtures import free_port

pytestmark = pytest.mark.integration


def served_leaf(proxy_port: int, host: str, port: int, trusted: Path) -> x509.Certificate:
    """CONNECT through the proxy and finish a TLS handshake that trusts only ``trusted``."""
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as raw:
        raw.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        context = ssl.create_default_context(cafile=str(trusted))
        with context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def wait_until(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, httpx.HTTPError, ssl.SSLError):
            pass
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, check=False, timeout=30)


def test_serve_runs_the_whole_gateway(tmp_path: Path) -> None:
    public_root = make_ca("serve test public root")
    leaf = make_leaf(["localhost"], public_root)
    origin = Origin("serve-origin", server_context([leaf.cert, public_root.cert], leaf.key))
    upstream_ca = tmp_path / "public-root.pem"
    upstream_ca.write_bytes(public_root.cert.public_bytes(Encoding.PEM))
    data = tmp_path / "data"
    cli = [sys.executable, "-m", "tlsgate", "--data-dir", str(data)]
    subprocess.run([*cli, "ca", "init", "--days", "30"], check=True, capture_output=True, timeout=60)
    proxy_port, portal_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        serve = subprocess.Popen(
            [*cli, "serve", "--proxy-listen", f"127.0.0.1:{proxy_port}", "--portal-listen", f"127.0.0.1:{portal_port}",
             "--upstream-ca", str(upstream_ca)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    portal = f"https://127.0.0.1:{portal_port}"
    root_file = data / "tlsgate-root.pem"
    try:
        # The portal speaks HTTPS with a certificate from the gateway's own CA.
        wait_until(root_file.exists)
        trust = ssl.create_default_context(cafile=str(root_file))
        wait_until(lambda: httpx.get(f"{portal}/api/v1/ca", timeout=2, verify=trust).status_code == 200)
        wait_until(lambda: curl("-o", "/dev/null", f"http://127.0.0.1:{proxy_port}/").returncode == 0)
        printed = log.read_text()
        assert f"http://127.0.0.1:{proxy_port}" in printed
        assert str(root_file) in printed
        assert "one-time password" in printed

        # HTTPS through the proxy, trusting only the root that serve pointed at.
        url = f"https://localhost:{origin.port}/hello"
        result = curl("-x", f"http://127.0.0.1:{proxy_port}", "--cacert", str(root_file), url)
        assert result.stdout == b"hello from serve-origin /hello", result.stderr
        # The portal hands out the very same root.
        served_root = httpx.get(f"{portal}/api/v1/ca/certificates?format=pem", verify=trust).content
        assert served_root == root_file.read_bytes()

        # Renewed in place while running: new leaves come from the renewed version, no restart.
        # The 30-day root caps its leaves (199 days otherwise); the renewed version lifts the cap.
        first_version = x509.load_pem_x509_certificate(root_file.read_bytes())
        before = served_leaf(proxy_port, "localhost", origin.port, root_file)
        assert before.not_valid_after_utc == first_version.not_valid_after_utc
        subprocess.run([*cli, "ca", "renew", "--days", "3650"], check=True, capture_output=True, timeout=60)
        wait_until(
            lambda: (
                served_leaf(proxy_port, "127.0.0.1", origin.port, root_file).not_valid_after_utc
                > first_version.not_valid_after_utc
            ),
            15,
        )
        after = served_leaf(proxy_port, "127.0.0.1", origin.port, root_file)
        aki = x509.AuthorityKeyIdentifier
        assert after.extensions.get_extension_for_class(aki) == before.extensions.get_extension_for_class(aki)

        # An admin automates through the API with a token issued on the command line.
        api_token = subprocess.run(
            [*cli, "admin", "token", "create", "api", "test-automation"], capture_output=True, text=True, check=True
        ).stdout.strip()
        admin = {"Authorization": f"Bearer {api_token}"}

        # A host put on the do-not-inspect list through the API is spliced from then on, no restart.
        listed = httpx.put(
            f"{portal}/api/v1/do-not-inspect", json={"hosts": ["localhost"]}, headers=admin, verify=trust
        )
        assert listed.status_code == 200, listed.text
        wait_until(
            lambda: curl("-x", f"http://127.0.0.1:{proxy_port}", "--cacert", str(upstream_ca), url).returncode == 0
        )
        bypassed = served_leaf(proxy_port, "localhost", origin.port, upstream_ca)
        assert bypassed == leaf.cert  # the client sees the origin's own certificate

        # An endpoint enrolls over verified HTTPS, syncs its stores, and the portal sees it ready.
        enroll_token = subprocess.run(
            [*cli, "admin", "token", "create", "enrollment", "laptops"], capture_output=True, text=True, check=True
        ).stdout.strip()
        agent = [sys.executable, "-m", "tlsgate", "--data-dir", str(tmp_path / "endpoint")]
        stores = ["--root", str(tmp_path / "endpoint-root"), "--home", str(tmp_path / "endpoint-home"),
                  "--store", "debian", "--store", "nss"]  # fmt: skip
        enrolled = subprocess.run(
            [*agent, "agent", "enroll", "--portal", portal, "--token", enroll_token, "--portal-ca", str(root_file)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert enrolled.returncode == 0, enrolled.stderr
        synced = subprocess.run([*agent, "agent", "sync", *stores], capture_output=True, text=True, timeout=120)
        assert synced.returncode == 0, synced.stderr
        assert "Portal verdict: ready" in synced.stdout
        endpoints = httpx.get(f"{portal}/api/v1/endpoints", headers=admin, verify=trust).json()
        assert [(e["state"], len(e["trusts"]) > 0) for e in endpoints] == [("ready", True)]

        # The admin rotates to a new key; the agent follows through the cross-certificate the portal serves.
        rotated = httpx.post(f"{portal}/api/v1/ca/rotate", json={"days": 3650}, headers=admin, verify=trust)
        assert rotated.status_code == 200, rotated.text
        new_root = rotated.json()["current_root"]
        resynced = subprocess.run(
            [*agent, "agent", "sync", *stores, "--json"], capture_output=True, text=True, timeout=120
        )
        assert resynced.returncode == 0, resynced.stderr
        report = json.loads(resynced.stdout)
        assert report["refused"] == []
        installed = {v["subject"] for s in report["status"]["stores"] for v in s["versions"]}
        assert "CN=tlsgate Interception Root CA G2,O=tlsgate" in installed
        assert new_root == httpx.get(f"{portal}/api/v1/ca", verify=trust).json()["current_root"]

        # `agent run` keeps syncing on its interval.
        running = subprocess.run(
            [*agent, "agent", "run", "--interval", "0.2", "--max-runs", "2", *stores],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert running.returncode == 0, running.stderr
        assert running.stderr.count("a valid version of the interception CA is installed") == 2

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0
        assert curl(f"http://127.0.0.1:{proxy_port}/").returncode != 0  # the proxy is gone with it

        # With the portal gone, the agent keeps the last good CA set and says it will retry.
        outage = subprocess.run(
            [*agent, "agent", "run", "--interval", "0.2", "--max-runs", "2", *stores],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert outage.returncode == 0, outage.stderr
        assert "portal unreachable, kept the last good CA set" in outage.stderr
        assert "retrying in" in outage.stderr
        assert "a valid version of the interception CA is installed" in outage.stderr
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        origin.close()
