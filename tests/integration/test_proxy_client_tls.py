"""Our TLS with the client after CONNECT, at the edges: a ClientHello sent in the same packet as
the CONNECT, a client that leaves or stalls mid-handshake, a broken ClientHello, a client that
reads a large response slowly, and a proxy stopped while handshakes are open.

The usual case (the ClientHello after the 200) is left in the kernel for OpenSSL's socket I/O;
a ClientHello already read with the CONNECT goes through the loop's TLS. Both must serve."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from badssl import BadSSL, big_body
from proxy_fixtures import ProxyThread, badssl, issuer, open_tunnel, proxy, tlsgate_ca

from tlsgate.policy import Policy
from tlsgate.proxy import ProxySettings
from tlsgate.proxy.tlssock import TLSSocketTransport

pytestmark = pytest.mark.integration
__all__ = ["badssl", "issuer", "proxy", "tlsgate_ca"]


def _read_response(tls: ssl.SSLSocket) -> bytes:
    """One Content-Length response (bounded by the socket timeout)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        assert chunk, f"closed before a response head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:])
    length = int(next(value for name, value in fields.items() if name.lower() == b"content-length"))
    while len(body) < length:
        chunk = tls.recv(65536)
        assert chunk, "closed inside a body"
        body += chunk
    return head + b"\r\n\r\n" + body


def _client_transports(proxy: ProxyThread) -> list[object]:
    assert proxy.server is not None
    return [conn.transport for conn in list(proxy.server.connections)]


def _wait_closed(sock: socket.socket, within: float) -> float:
    """Seconds until the proxy closes ``sock`` (EOF or reset); fails after ``within``."""
    started = time.monotonic()
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the proxy kept the connection open for {within} s") from None
    return time.monotonic() - started


def _slow_reader(proxy: ProxyThread, root: Path, port: int) -> ssl.SSLSocket:
    """A TLS client through the proxy to good.test with a small receive buffer, so that the proxy
    meets a full socket as soon as the client stops reading."""
    context = ssl.create_default_context(cafile=str(root))
    tls = context.wrap_socket(open_tunnel(proxy, "good.test", port), server_hostname="good.test")
    tls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    return tls


def test_clienthello_in_the_connect_packet_is_served(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL
) -> None:
    port = badssl.ports["good"]
    context = ssl.create_default_context(cafile=str(tlsgate_ca[1]))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="good.test")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(f"CONNECT good.test:{port} HTTP/1.1\r\n\r\n".encode() + hello)  # one write, no wait
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        incoming.write(rest)
        while True:  # the handshake over memory BIOs, on this end too
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if pending := outgoing.read():
                    sock.sendall(pending)
                chunk = sock.recv(65536)
                assert chunk, "the proxy closed during the handshake"
                incoming.write(chunk)
        sock.sendall(outgoing.read())
        tls.write(b"GET /hello HTTP/1.1\r\nHost: good.test\r\n\r\n")
        sock.sendall(outgoing.read())
        reply = b""
        while b"hello from good" not in reply:
            chunk = sock.recv(65536)
            assert chunk, f"closed before the response: {reply!r}"
            incoming.write(chunk)
            with contextlib.suppress(ssl.SSLWantReadError):
                while piece := tls.read(65536):  # every record that came
                    reply += piece
    assert reply.startswith(b"HTTP/1.1 200")
    assert b"hello from good" in reply


def test_the_usual_handshake_runs_on_the_socket(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL
) -> None:
    """CONNECT, the 200, then the ClientHello: the connection is OpenSSL's, not a memory-BIO one."""
    port = badssl.ports["good"]
    context = ssl.create_default_context(cafile=str(tlsgate_ca[1]))
    with context.wrap_socket(open_tunnel(proxy, "good.test", port), server_hostname="good.test") as tls:
        for _ in range(3):  # keep-alive on it
            tls.sendall(b"GET /hello HTTP/1.1\r\nHost: good.test\r\n\r\n")
            assert b"hello from good" in _read_response(tls)
        assert any(isinstance(t, TLSSocketTransport) for t in _client_transports(proxy))


def test_client_leaving_after_connect_leaves_nothing(proxy: ProxyThread, badssl: BadSSL) -> None:
    assert proxy.server is not None
    server = proxy.server
    ours = set()
    for _ in range(20):
        with open_tunnel(proxy, "good.test", badssl.ports["good"]) as sock:
            ours.add("{}:{}".format(*sock.getsockname()))

    def left() -> list[object]:
        return [c for c in list(server.connections) if c.peer in ours]

    deadline = time.monotonic() + 5
    while left() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not left()
    assert not [t for t in list(server.raw_transports) if "{}:{}".format(*t.get_extra_info("peername")) in ours]


def test_broken_clienthello_ends_the_connection_with_an_event(proxy: ProxyThread, badssl: BadSSL) -> None:
    port = badssl.ports["good"]
    with open_tunnel(proxy, "good.test", port) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x08\x02\x00\x00\x04\x03\x03\x00\x00")  # a ServerHello, from a client
        assert _wait_closed(sock, 5) < 5
    event = proxy.wait_for_event(lambda e: e.tls_error and "client handshake failed" in e.tls_error)
    assert event.host == "good.test"
    assert event.action == "inspect"


def test_stalled_handshakes_are_closed_after_the_handshake_timeout(issuer: object, badssl: BadSSL) -> None:
    thread = ProxyThread(ProxySettings(host="127.0.0.1", port=0, handshake_timeout=1.0), issuer, Policy())  # type: ignore[arg-type]
    try:
        port = badssl.ports["good"]
        silent = open_tunnel(thread, "good.test", port)  # says nothing after CONNECT
        partial = open_tunnel(thread, "good.test", port)
        partial.sendall(b"\x16\x03\x01\x02\x00\x01")  # half a ClientHello, then nothing
        with silent, partial:
            assert _wait_closed(silent, 5) < 4.5
            assert _wait_closed(partial, 5) < 4.5
        event = thread.wait_for_event(lambda e: e.tls_error and "took longer than 1 s" in e.tls_error)
        assert event.tls_error == "client handshake failed: the TLS handshake took longer than 1 s"
        assert (event.host, event.action) == ("good.test", "inspect")
    finally:
        thread.stop()


def test_slow_reader_gets_a_large_response_whole(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL
) -> None:
    """The client reads nothing for a while: the proxy stops reading the origin (bounded buffers),
    then the whole body arrives in order once the client reads."""
    size = 8 * 1024 * 1024
    with _slow_reader(proxy, tlsgate_ca[1], badssl.ports["good"]) as tls:
        tls.sendall(f"GET /big?n={size} HTTP/1.1\r\nHost: good.test\r\n\r\n".encode())
        time.sleep(1.0)  # the proxy meets a full socket and must hold the origin back
        reply = _read_response(tls)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert len(body) == size
    assert hashlib.sha256(body).digest() == hashlib.sha256(big_body(0, size)).digest()


def test_stopping_the_proxy_mid_handshake(issuer: object, badssl: BadSSL) -> None:
    thread = ProxyThread(ProxySettings(host="127.0.0.1", port=0), issuer, Policy())  # type: ignore[arg-type]
    port = badssl.ports["good"]
    socks = [open_tunnel(thread, "good.test", port) for _ in range(3)]
    socks[1].sendall(b"\x16\x03\x01\x02\x00\x01")  # one is inside its handshake
    try:
        thread.stop()
        for sock in socks:
            assert _wait_closed(sock, 5) < 5
        assert thread.server is not None
        assert not thread.server.connections
        assert not thread.server.raw_transports
    finally:
        for sock in socks:
            sock.close()


def test_closing_after_a_response_loses_none_of_it(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL
) -> None:
    """A ``Connection: close`` request, then more bytes from the client: some while the response
    streams (ignored: RFC 9112 §9.6, not a 400 that cuts the response), some when the proxy has
    sent everything and is closing. The client still gets every byte of the response: a socket
    closed with unread input is reset, and a reset drops what was still on its way."""
    size = 4 * 1024 * 1024
    with _slow_reader(proxy, tlsgate_ca[1], badssl.ports["good"]) as tls:
        tls.sendall(f"GET /big?n={size} HTTP/1.1\r\nHost: good.test\r\nConnection: close\r\n\r\n".encode())
        time.sleep(0.3)
        tls.sendall(b"GET /hello HTTP/1.1\r\nHost: good.test\r\n\r\n")
        data = b""
        late_sent = False
        while True:
            try:
                chunk = tls.recv(65536)
            except (ConnectionResetError, ssl.SSLError) as exc:
                raise AssertionError(f"reset after {len(data)} bytes: {exc!r}") from None
            if not chunk:
                break
            data += chunk
            if not late_sent and len(data) > size * 3 // 4:
                time.sleep(0.3)  # by now the proxy has written it all and closes, sending the rest
                tls.sendall(b"GET /hello HTTP/1.1\r\nHost: good.test\r\n\r\n")
                late_sent = True
            time.sleep(0.001)  # a slow reader: the proxy's socket still holds data when it closes
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert len(body) == size
    assert body == big_body(0, size)


def _s_client_cipher(proxy: ProxyThread, root: Path, port: int, *choice: str) -> subprocess.CompletedProcess[str]:
    """``openssl s_client`` through the proxy to good.test, offering ciphers in the order given."""
    return subprocess.run(
        [
            "openssl", "s_client", "-proxy", f"127.0.0.1:{proxy.port}", "-connect", f"good.test:{port}",
            "-servername", "good.test", "-CAfile", str(root), "-verify_return_error", "-ign_eof", *choice,
        ],
        input="GET /hello HTTP/1.1\r\nHost: good.test\r\nConnection: close\r\n\r\n",
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("version", "option", "offer"),
    [
        ("-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384"),
        ("-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"),
        ("-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384"),
        ("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"),
    ],
)
def test_the_clients_cipher_order_decides(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL, version: str, option: str, offer: str
) -> None:
    """Every cipher we accept is strong, so the client's first choice is taken (its hardware's fastest)."""
    result = _s_client_cipher(proxy, tlsgate_ca[1], badssl.ports["good"], version, option, offer)
    assert result.returncode == 0, result.stderr
    assert f"Cipher is {offer.split(':')[0]}" in result.stdout
    assert "Verify return code: 0 (ok)" in result.stdout
    assert "hello from good" in result.stdout


def test_tls12_without_forward_secrecy_or_aead_is_refused(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL
) -> None:
    """CBC, even with ECDHE and SHA-256/384 (Python's default list has them), is not on offer to
    clients; RSA key exchange (no forward secrecy) stays refused."""
    for weak in (
        "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384",
        "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256",
        "AES128-GCM-SHA256:AES256-GCM-SHA384",
    ):
        result = _s_client_cipher(proxy, tlsgate_ca[1], badssl.ports["good"], "-tls1_2", "-cipher", weak)
        assert result.returncode != 0
        assert "handshake failure" in result.stderr
        assert "hello from good" not in result.stdout
