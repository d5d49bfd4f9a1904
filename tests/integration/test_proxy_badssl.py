"""The local badssl suite: each broken origin gives the client a 502 page naming the reason;
the good origin passes; a bypassed host shows the origin's own certificate."""

from __future__ import annotations

import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from badssl import BAD_CASES, BadSSL
from cryptography import x509
from proxy_fixtures import ProxyThread, badssl, issuer, proxy, tlsgate_ca

pytestmark = pytest.mark.integration
__all__ = ["badssl", "issuer", "proxy", "tlsgate_ca"]


CONNECTED = b"HTTP/1.1 200 Connection established\r\n\r\n"


def fetch(proxy: ProxyThread, root: Path, url: str) -> subprocess.CompletedProcess[bytes]:
    """curl's output with the headers of the response (not of the CONNECT) first."""
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "15", "-x", proxy.url, "--cacert", str(root), "-D", "-", url],
        capture_output=True,
        check=False,
        timeout=30,
    )
    result.stdout = result.stdout.removeprefix(CONNECTED)
    return result


def test_good_origin_passes(proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL) -> None:
    result = fetch(proxy, tlsgate_ca[1], badssl.url("good"))
    assert result.returncode == 0
    assert result.stdout.startswith(b"HTTP/1.1 200")
    assert b"hello from good" in result.stdout


@pytest.mark.parametrize(("case", "reason"), sorted(BAD_CASES.items()))
def test_broken_origin_gives_error_page(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL, case: str, reason: str
) -> None:
    result = fetch(proxy, tlsgate_ca[1], badssl.url(case))
    assert result.returncode == 0, result.stderr  # the client's TLS to us is fine: it trusts our leaf
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 502")
    assert b"text/html" in head
    assert reason.encode() in body
    assert f"{case}.test".encode() in body
    assert b"hello from" not in body  # never the origin's content
    event = proxy.wait_for_event(lambda e: e.host == f"{case}.test" and e.status == 502)
    assert event.tls_error is not None
    assert reason in event.tls_error


def test_bypassed_host_shows_the_origins_own_certificate(proxy: ProxyThread, badssl: BadSSL) -> None:
    port = badssl.ports["bypassed"]
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(f"CONNECT bypassed.test:{port} HTTP/1.1\r\nHost: bypassed.test:{port}\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # we only look at which certificate arrives
        with context.wrap_socket(sock, server_hostname="bypassed.test") as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            cert = x509.load_der_x509_certificate(der)
            assert cert == badssl.bypass_cert
            tls.sendall(b"GET /spliced HTTP/1.1\r\nHost: bypassed.test\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := tls.recv(65536):
                reply += chunk
    assert b"hello from bypassed /spliced" in reply
    assert b"Via: 1.1 tlsgate" not in reply
    event = proxy.wait_for_event(lambda e: e.action == "bypass" and e.host == "bypassed.test")
    assert event.bytes_in > 0
    assert event.bytes_out > 0
