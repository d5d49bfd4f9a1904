"""Inside an intercepted tunnel there is one origin: the CONNECT host. SNI and Host must name it."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
from badssl import BadSSL
from proxy_fixtures import ProxyThread, badssl, issuer, proxy, tlsgate_ca

pytestmark = pytest.mark.integration
__all__ = ["badssl", "issuer", "proxy", "tlsgate_ca"]


def connect(proxy: ProxyThread, host: str, port: int) -> socket.socket:
    raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    raw.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    assert raw.recv(4096).startswith(b"HTTP/1.1 200")
    return raw


def test_an_sni_naming_another_host_gets_no_certificate(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL
) -> None:
    """A rewritten CONNECT (bank → elsewhere) must not yield a trusted leaf for the browser's SNI."""
    raw = connect(proxy, "good.test", badssl.ports["good"])
    context = ssl.create_default_context(cafile=str(tlsgate_ca[1]))
    with pytest.raises(ssl.SSLError):  # the handshake ends (unrecognized_name) with no certificate for bank.test
        context.wrap_socket(raw, server_hostname="bank.test")
    raw.close()


def test_the_same_name_in_sni_is_served(proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL) -> None:
    raw = connect(proxy, "good.test", badssl.ports["good"])
    context = ssl.create_default_context(cafile=str(tlsgate_ca[1]))
    with context.wrap_socket(raw, server_hostname="GOOD.test") as tls:
        tls.sendall(b"GET /same HTTP/1.1\r\nHost: good.test\r\nConnection: close\r\n\r\n")
        assert tls.recv(65536).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("host", ["evil.test", "good.test:1", "good.test.evil"])
def test_a_host_header_for_another_origin_is_misdirected(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL, host: str
) -> None:
    raw = connect(proxy, "good.test", badssl.ports["good"])
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
    raw = connect(proxy, "good.test", port)
    context = ssl.create_default_context(cafile=str(tlsgate_ca[1]))
    context.check_hostname = False  # Python would refuse to send such an SNI with the name check on
    with context.wrap_socket(raw, server_hostname=f"good.test:{port}") as tls:
        cert = tls.getpeercert()
        assert ("DNS", "good.test") in cert["subjectAltName"]
        tls.sendall(b"GET /go HTTP/1.1\r\nHost: good.test\r\nConnection: close\r\n\r\n")
        assert tls.recv(65536).startswith(b"HTTP/1.1 200")
