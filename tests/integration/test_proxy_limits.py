"""Raw bytes at the proxy: smuggling and limit cases get their status and a closed connection;
garbage never gets a traceback; client TLS rejections are recorded; CONNECT without TLS."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import time
from pathlib import Path

import pytest
from badssl import BadSSL
from proxy_fixtures import ProxyThread, badssl, issuer, proxy, tlsgate_ca

pytestmark = pytest.mark.integration
__all__ = ["badssl", "issuer", "proxy", "tlsgate_ca"]


def exchange(port: int, data: bytes, *, half_close: bool = False) -> bytes:
    """Send raw bytes, read until the proxy closes (bounded by a timeout).

    ``half_close``: then close our sending side, as `printf ... | nc -N` does.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        reply = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                return reply
            reply += chunk
    raise AssertionError(f"the proxy did not close the connection; got {reply[:200]!r}")


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (
            b"POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (b"POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd", 400),
        (b"POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\nabc\r\n", 400),
        (b"POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: identity, chunked\r\n\r\n", 400),
        (b"GET http://a.test/" + b"a" * 10000 + b" HTTP/1.1\r\nHost: a.test\r\n\r\n", 414),
        (b"GET http://a.test/ HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 150 + b"\r\n", 431),
        (b"GET http://a.test/ HTTP/1.1\r\nX-Big: " + b"b" * 80000 + b"\r\n\r\n", 431),
        (b"\x00\xff\xfe garbage \r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),  # origin-form to a proxy
        (b"CONNECT nowhere HTTP/1.1\r\n\r\n", 400),
    ],
)
def test_bad_requests_get_status_and_close(proxy: ProxyThread, raw: bytes, status: int) -> None:
    reply = exchange(proxy.port, raw)
    assert reply.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"Connection: close" in reply
    assert b"Traceback" not in reply


def test_smuggling_inside_an_intercepted_tunnel(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL
) -> None:
    port = badssl.ports["good"]
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(f"CONNECT good.test:{port} HTTP/1.1\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        context = ssl.create_default_context(cafile=str(tlsgate_ca[1]))
        with context.wrap_socket(sock, server_hostname="good.test") as tls:
            tls.sendall(
                b"POST / HTTP/1.1\r\nHost: good.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            reply = b""
            while chunk := tls.recv(65536):
                reply += chunk
    assert reply.startswith(b"HTTP/1.1 400 ")


def test_idle_and_slow_clients_are_closed(issuer: object, badssl: BadSSL) -> None:
    from tlsgate.policy import Policy
    from tlsgate.proxy import ProxySettings

    settings = ProxySettings(host="127.0.0.1", port=0, idle_timeout=1.0, handshake_timeout=1.0)
    thread = ProxyThread(settings, issuer, Policy())  # type: ignore[arg-type]
    try:
        with socket.create_connection(("127.0.0.1", thread.port), timeout=5) as sock:
            sock.sendall(b"GET http://a.test/ HTTP/1.1\r\n")  # never finishes its head
            started = time.monotonic()
            assert sock.recv(100) == b""
            assert time.monotonic() - started < 4.5
    finally:
        thread.stop()


def test_connection_cap(issuer: object) -> None:
    from tlsgate.policy import Policy
    from tlsgate.proxy import ProxySettings

    thread = ProxyThread(ProxySettings(host="127.0.0.1", port=0, max_connections=2), issuer, Policy())  # type: ignore[arg-type]
    try:
        held = [socket.create_connection(("127.0.0.1", thread.port), timeout=5) for _ in range(2)]
        time.sleep(0.2)
        reply = exchange(thread.port, b"")
        assert reply.startswith(b"HTTP/1.1 503 ")
        for sock in held:
            sock.close()
    finally:
        thread.stop()


def test_client_rejecting_our_leaf_is_recorded(proxy: ProxyThread, badssl: BadSSL) -> None:
    port = badssl.ports["good"]
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(f"CONNECT good.test:{port} HTTP/1.1\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        context = ssl.create_default_context()  # the system store: it does not trust our root
        with pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(sock, server_hostname="good.test")
    event = proxy.wait_for_event(lambda e: e.action == "reject")
    assert event.host == "good.test"
    assert event.client.startswith("127.0.0.1:")
    assert event.tls_error is not None
    assert "unknown_ca" in event.tls_error
    assert proxy.server is not None
    assert any(e.tls_error and "unknown_ca" in e.tls_error for e in proxy.server.rejections)


def test_connect_without_tls_is_served_as_plain_http(proxy: ProxyThread) -> None:
    from badssl import plain_origin

    with plain_origin("tunnelled") as origin:
        reply = exchange(
            proxy.port,
            f"CONNECT tunnelled.test:{origin.port} HTTP/1.1\r\n\r\n"
            f"GET /inside HTTP/1.1\r\nHost: tunnelled.test\r\nConnection: close\r\n\r\n".encode(),
        )
    assert reply.startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK")
    assert reply.endswith(b"hello from tunnelled /inside")


def test_connect_without_tls_can_be_refused(issuer: object) -> None:
    from tlsgate.policy import Policy
    from tlsgate.proxy import ProxySettings

    settings = ProxySettings(host="127.0.0.1", port=0, connect_without_tls="refuse")
    thread = ProxyThread(settings, issuer, Policy())  # type: ignore[arg-type]
    try:
        reply = exchange(thread.port, b"CONNECT a.test:80 HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        assert reply == b"HTTP/1.1 200 Connection established\r\n\r\n"
        assert thread.wait_for_event(lambda e: e.error == "CONNECT without TLS refused")
    finally:
        thread.stop()


def test_unreachable_origin_gives_502(proxy: ProxyThread) -> None:
    from proxy_fixtures import free_port

    reply = exchange(proxy.port, f"GET http://down.test:{free_port()}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 502 ")
    assert b"connection refused" in reply


def test_a_client_that_half_closes_after_its_request_gets_the_response(proxy: ProxyThread) -> None:
    from badssl import big_body, plain_origin

    # ``exchange`` fails unless the proxy closes the connection after the response. The origin's
    # /slow answers after 1 s, so the EOF is read before the head goes out and the head announces
    # the close; a head already sent when the EOF arrives cannot (the close still follows).
    with plain_origin("halfclose") as origin:
        small = exchange(
            proxy.port,
            f"GET http://halfclose.test:{origin.port}/slow HTTP/1.1\r\nHost: h\r\n\r\n".encode(),
            half_close=True,
        )
        large = exchange(
            proxy.port,
            f"GET http://halfclose.test:{origin.port}/big?n=300001 HTTP/1.1\r\nHost: h\r\n\r\n".encode(),
            half_close=True,
        )
    head, _, body = small.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Connection: close" in head
    assert body == b"slow but done"
    head, _, body = large.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert body == big_body(0, 300_001)


def _intercepted_half_close(port: int, cafile: Path, host: str, request: bytes, *, close_notify: bool) -> bytes:
    """One request inside an intercepted tunnel, then our sending side closed; the reply read to the end.

    ``close_notify``: our close_notify, then our FIN (TLS 1.3's half-close; Go's ``CloseWrite``);
    else a bare FIN under the TLS stream. Raises unless the proxy ends the connection in 5 s.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"CONNECT {host} HTTP/1.1\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ssl.create_default_context(cafile=str(cafile)).wrap_bio(
            incoming, outgoing, server_hostname=host.rsplit(":", 1)[0]
        )

        def pump(step: object) -> object:
            while True:
                try:
                    return step()  # type: ignore[operator]
                except ssl.SSLZeroReturnError:
                    return b""  # the proxy's close_notify
                except ssl.SSLWantReadError:
                    if pending := outgoing.read():  # (nothing to send after our FIN)
                        sock.sendall(pending)
                    data = sock.recv(65536)
                    if not data:
                        raise AssertionError("the proxy closed without a TLS close_notify") from None
                    incoming.write(data)

        pump(tls.do_handshake)
        tls.write(request)
        if close_notify:
            with contextlib.suppress(ssl.SSLWantReadError):  # sent; the proxy's comes after the response
                tls.unwrap()
        sock.sendall(outgoing.read())
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            chunk = pump(lambda: tls.read(65536))
            if not chunk:
                return reply
            reply += chunk  # type: ignore[operator]
    raise AssertionError(f"the proxy did not close the connection; got {reply[:200]!r}")


@pytest.mark.parametrize("close_notify", [True, False], ids=["close_notify", "bare FIN"])
def test_an_intercepted_client_that_closes_after_its_request_ends_the_exchange(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL, close_notify: bool
) -> None:
    """Inside TLS, the client's close_notify or FIN ends the connection at once, as in nginx and
    Squid (clients send close_notify when they give up); the cut request is in the log."""
    path = f"/slow?{'notify' if close_notify else 'fin'}"
    request = f"GET {path} HTTP/1.1\r\nHost: good.test\r\n\r\n".encode()
    try:
        reply = _intercepted_half_close(
            proxy.port, tlsgate_ca[1], f"good.test:{badssl.ports['good']}", request, close_notify=close_notify
        )
    except ssl.SSLError:  # a bare FIN: OpenSSL 3 answers the truncated stream with an alert
        if close_notify:
            raise
        reply = b""
    assert reply == b""
    event = proxy.wait_for_event(lambda e: e.path == path)
    assert (event.status, event.error) == (0, "client closed the connection")
    assert event.duration_ms < 900  # recorded at the close, not after the origin's answer (1 s)


def test_a_half_closed_client_waits_for_its_answer_only_as_long_as_an_idle_one(issuer: object) -> None:
    """A FIN after a request is also how a client gives up: an origin that never answers does
    not hold the connection (and its origin connection) past the idle timeout."""
    from tlsgate.policy import Policy
    from tlsgate.proxy import ProxySettings

    thread = ProxyThread(ProxySettings(host="127.0.0.1", port=0, idle_timeout=1.0), issuer, Policy())  # type: ignore[arg-type]
    try:
        with socket.create_server(("127.0.0.1", 0)) as mute:
            request = f"GET http://mute.test:{mute.getsockname()[1]}/half HTTP/1.1\r\nHost: h\r\n\r\n".encode()
            started = time.monotonic()
            assert exchange(thread.port, request, half_close=True) == b""  # closed, unanswered
            assert time.monotonic() - started < 4
        event = thread.wait_for_event(lambda e: e.host == "mute.test")
    finally:
        thread.stop()
    assert event.status == 0
    assert event.error == "the client closed its side; no answer from the origin in 1 s"


def test_a_request_body_broken_mid_exchange_is_logged_as_that_request(proxy: ProxyThread) -> None:
    """The head went to the origin, then a bad chunk size: 400, and the log names the request."""
    from badssl import plain_origin

    with plain_origin("broken") as origin:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            sock.sendall(
                f"POST http://broken.test:{origin.port}/slow?broken HTTP/1.1\r\nHost: h\r\n"
                "Transfer-Encoding: chunked\r\n\r\n".encode()
            )
            time.sleep(0.2)  # the head is on its way to the origin
            sock.sendall(b"zz\r\nabc\r\n")
            reply = sock.recv(65536)
        event = proxy.wait_for_event(lambda e: e.path.endswith("/slow?broken"))
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert (event.method, event.host, event.status) == ("POST", "broken.test", 400)
    assert event.error


def test_a_request_whose_client_reset_the_connection_is_recorded(proxy: ProxyThread) -> None:
    """The client resets while the origin is still thinking: the log has the request, status 0.

    (A plain-HTTP client's FIN alone is taken as a half-close: the response is still sent.)"""
    from badssl import plain_origin

    with plain_origin("gaveup") as origin:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            sock.sendall(f"GET http://gaveup.test:{origin.port}/slow?gaveup HTTP/1.1\r\nHost: h\r\n\r\n".encode())
            time.sleep(0.2)  # the request is on its way to the origin
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        event = proxy.wait_for_event(lambda e: e.path.endswith("/slow?gaveup"))
    assert (event.method, event.host, event.status) == ("GET", "gaveup.test", 0)
    assert event.error is not None and event.error.startswith("client connection lost: "), event.error
    assert event.duration_ms < 900  # recorded at the reset, not after the origin's answer (1 s)


def test_a_request_cut_by_the_proxys_shutdown_is_recorded(issuer: object) -> None:
    """An origin that never answers outlasts the drain: the request is logged as cut by the stop."""
    from tlsgate.policy import Policy
    from tlsgate.proxy import ProxySettings

    thread = ProxyThread(ProxySettings(host="127.0.0.1", port=0), issuer, Policy())  # type: ignore[arg-type]
    with socket.create_server(("127.0.0.1", 0)) as mute, socket.create_connection(("127.0.0.1", thread.port)) as sock:
        try:
            sock.sendall(f"GET http://mute.test:{mute.getsockname()[1]}/x HTTP/1.1\r\nHost: h\r\n\r\n".encode())
            mute.settimeout(5)
            with mute.accept()[0]:  # the request reached the origin, which stays silent
                thread.stop()  # drains for 2 s, then closes what is left
        finally:
            thread.stop()
        event = thread.wait_for_event(lambda e: e.host == "mute.test")
    assert (event.path.endswith("/x"), event.status) == (True, 0)
    assert event.error == "the proxy stopped before the response was complete"


def test_a_download_cancelled_mid_body_is_recorded_with_what_was_sent(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL
) -> None:
    size = 20_000_000
    context = ssl.create_default_context(cafile=str(tlsgate_ca[1]))
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(f"CONNECT good.test:{badssl.ports['good']} HTTP/1.1\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        with context.wrap_socket(sock, server_hostname="good.test") as tls:
            tls.sendall(f"GET /big?n={size} HTTP/1.1\r\nHost: good.test\r\n\r\n".encode())
            received = 0
            while received < 200_000:
                received += len(tls.recv(65536))
    event = proxy.wait_for_event(lambda e: e.path == f"/big?n={size}")
    assert event.status == 200
    assert 200_000 <= event.bytes_out < size
    assert event.error is not None and event.error.startswith("client "), event.error


def test_a_client_that_half_closes_inside_its_request_gets_nothing(proxy: ProxyThread) -> None:
    """A request cut short by the client's EOF was given up: the connection closes, nothing is sent back.

    (Cut inside its head: with a whole head the exchange starts at once, and an origin that
    fails fast may answer 502 before the EOF is read.)"""
    request = b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n"
    assert exchange(proxy.port, request, half_close=True) == b""
