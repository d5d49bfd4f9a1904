"""Inside an intercepted tunnel there is one origin: the CONNECT host. SNI and Host must name it."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from badssl import BadSSL
from proxy_fixtures import ProxyThread, badssl, issuer, open_tunnel, proxy, tlsgate_ca

from tlsgate.ca.leaf import LeafIssuer

pytestmark = pytest.mark.integration
__all__ = ["badssl", "issuer", "proxy", "tlsgate_ca"]


def test_an_sni_naming_another_host_gets_no_certificate(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL
) -> None:
    """A rewritten CONNECT (bank → elsewhere) must not yield a trusted leaf for the browser's SNI."""
    raw = open_tunnel(proxy, "good.test", badssl.ports["good"])
    context = ssl.create_default_context(cafile=str(tlsgate_ca[1]))
    with pytest.raises(ssl.SSLError):  # the handshake ends (unrecognized_name) with no certificate for bank.test
        context.wrap_socket(raw, server_hostname="bank.test")
    raw.close()


def test_the_same_name_in_sni_is_served(proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL) -> None:
    raw = open_tunnel(proxy, "good.test", badssl.ports["good"])
    context = ssl.create_default_context(cafile=str(tlsgate_ca[1]))
    with context.wrap_socket(raw, server_hostname="GOOD.test") as tls:
        tls.sendall(b"GET /same HTTP/1.1\r\nHost: good.test\r\nConnection: close\r\n\r\n")
        assert tls.recv(65536).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("host", ["evil.test", "good.test:1", "good.test.evil"])
def test_a_host_header_for_another_origin_is_misdirected(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL, host: str
) -> None:
    raw = open_tunnel(proxy, "good.test", badssl.ports["good"])
    context = ssl.create_default_context(cafile=str(tlsgate_ca[1]))
    with context.wrap_socket(raw, server_hostname="good.test") as tls:
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        reply = tls.recv(65536)
    assert reply.startswith(b"HTTP/1.1 421")


def test_an_sni_that_is_not_a_host_name_keeps_the_connect_hosts_leaf(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL
) -> None:
    """Old Go clients (Debian's hey) send "host:port" as SNI: serve the CONNECT host's leaf, not an error."""
    port = badssl.ports["good"]
    raw = open_tunnel(proxy, "good.test", port)
    context = ssl.create_default_context(cafile=str(tlsgate_ca[1]))
    context.check_hostname = False  # Python would refuse to send such an SNI with the name check on
    with context.wrap_socket(raw, server_hostname=f"good.test:{port}") as tls:
        cert = tls.getpeercert()
        assert ("DNS", "good.test") in cert["subjectAltName"]
        tls.sendall(b"GET /go HTTP/1.1\r\nHost: good.test\r\nConnection: close\r\n\r\n")
        assert tls.recv(65536).startswith(b"HTTP/1.1 200")


def test_clients_racing_to_a_new_host_share_one_mint_and_all_get_its_leaf(
    proxy: ProxyThread,
    tlsgate_ca: tuple[Path, Path],
    badssl: BadSSL,
    issuer: LeafIssuer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first contact's leaf is minted off the event loop, once, whoever asks at the same moment."""
    minted: list[tuple[object, ...]] = []
    real_mint = issuer.mint

    def counting_mint(hosts):  # type: ignore[no-untyped-def]
        minted.append(tuple(hosts))
        time.sleep(0.05)  # a slow mint: every client arrives while it runs
        return real_mint(hosts)

    monkeypatch.setattr(issuer, "mint", counting_mint)
    port = badssl.ports["good"]
    context = ssl.create_default_context(cafile=str(tlsgate_ca[1]))
    barrier = threading.Barrier(12)

    def client() -> list[tuple[str, str]]:
        raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        barrier.wait(10)
        raw.sendall(f"CONNECT race.test:{port} HTTP/1.1\r\nHost: race.test:{port}\r\n\r\n".encode())
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        with context.wrap_socket(raw, server_hostname="race.test") as tls:  # verified against our root
            return list(tls.getpeercert()["subjectAltName"])

    with ThreadPoolExecutor(12) as pool:
        names = list(pool.map(lambda _: client(), range(12)))
    assert names == [[("DNS", "race.test")]] * 12
    assert minted == [("race.test",)]


def test_a_connect_host_no_leaf_can_name_ends_the_handshake_with_a_reason(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL
) -> None:
    host = "a" * 64 + ".test"  # a 64-character label is not a DNS name
    raw = open_tunnel(proxy, host, badssl.ports["good"])
    context = ssl.create_default_context(cafile=str(tlsgate_ca[1]))
    context.check_hostname = False
    with pytest.raises((ssl.SSLError, ConnectionError)):
        context.wrap_socket(raw, server_hostname="x.test")
    raw.close()
    event = proxy.wait_for_event(lambda e: e.host == host)
    assert event.tls_error is not None
    assert "invalid host name" in event.tls_error


def _s_client(proxy: ProxyThread, ca_file: Path, port: int, session: Path, flag: str) -> str:
    """One ``openssl s_client`` connection through the proxy to good.test, saving or offering a session."""
    result = subprocess.run(
        [
            "openssl", "s_client", "-proxy", f"127.0.0.1:{proxy.port}", "-connect", f"good.test:{port}",
            "-servername", "good.test", "-CAfile", str(ca_file), "-verify_return_error", "-tls1_3", "-ign_eof",
            flag, str(session),
        ],
        input="GET / HTTP/1.1\r\nHost: good.test\r\nConnection: close\r\n\r\n",
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_openssl_resumes_its_session_with_the_intercepted_host_from_one_ticket(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL, tmp_path: Path
) -> None:
    """Each connection hands the client one TLS 1.3 ticket, and the client's next connection resumes."""
    session = tmp_path / "session.pem"
    first = _s_client(proxy, tlsgate_ca[1], badssl.ports["good"], session, "-sess_out")
    assert first.count("Post-Handshake New Session Ticket arrived") == 1
    assert "Verify return code: 0 (ok)" in first and "HTTP/1.1 200" in first
    second = _s_client(proxy, tlsgate_ca[1], badssl.ports["good"], session, "-sess_in")
    assert "Reused, TLSv1.3" in second
    assert "HTTP/1.1 200" in second
