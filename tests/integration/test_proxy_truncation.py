"""A response cut short must reach the client as cut short (RFC 9112 §9.8): a body read until
the origin's close is complete only when the TLS connection ended with close_notify; a bare
close (what an injected TCP FIN looks like) is a truncation, and the client's connection then
ends without a terminal chunk and without our close_notify."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from badssl import BadSSL
from proxy_fixtures import ProxyThread, badssl, issuer, open_tunnel, proxy, tlsgate_ca

pytestmark = pytest.mark.integration
__all__ = ["badssl", "issuer", "proxy", "tlsgate_ca"]


def _fetch(proxy: ProxyThread, root: Path, port: int, path: str) -> tuple[bytes, str]:
    """The raw bytes the client got, and how its connection ended ("close_notify" or the error)."""
    context = ssl.create_default_context(cafile=str(root))
    raw = open_tunnel(proxy, "good.test", port)
    with context.wrap_socket(raw, server_hostname="good.test", suppress_ragged_eofs=False) as tls:
        tls.settimeout(10)
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: good.test\r\n\r\n".encode())
        data = b""
        while True:
            try:
                chunk = tls.recv(65536)
            except (ssl.SSLError, ConnectionResetError) as exc:
                return data, type(exc).__name__
            if not chunk:
                return data, "close_notify"
            data += chunk
            if data.endswith(b"\r\n0\r\n\r\n"):
                return data, "complete chunked message"


def test_a_body_ended_by_close_notify_is_complete(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL
) -> None:
    data, ending = _fetch(proxy, tlsgate_ca[1], badssl.ports["good"], "/until-close?clean")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"first half;" in body
    assert b"second half" in body
    assert ending == "complete chunked message"
    event = proxy.wait_for_event(lambda e: e.path == "/until-close?clean")
    assert (event.status, event.error) == (200, None)


def test_a_body_ended_without_close_notify_is_passed_on_as_truncated(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL
) -> None:
    data, ending = _fetch(proxy, tlsgate_ca[1], badssl.ports["good"], "/until-close")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"first half;" in body
    assert not body.endswith(b"0\r\n\r\n")  # no terminal chunk: the client knows it is cut
    assert ending in ("SSLEOFError", "ConnectionResetError"), ending  # not close_notify
    event = proxy.wait_for_event(lambda e: e.path == "/until-close")
    assert event.error is not None
    assert "mid-response" in event.error
