"""The origin is dialled while the client's TLS handshake runs, used by the first request, and never leaked."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import uvloop
from badssl import BadSSL, make_leaf, server_context
from proxy_fixtures import ProxyThread, badssl, issuer, open_tunnel, proxy, resolve_test_names, tlsgate_ca

from tlsgate.ca.leaf import LeafIssuer
from tlsgate.policy import Policy
from tlsgate.proxy import ProxySettings
from tlsgate.proxy.events import Limits
from tlsgate.proxy.upstream import ResumingContext, UpstreamConnection, UpstreamPool, upstream_context

pytestmark = pytest.mark.integration
__all__ = ["badssl", "issuer", "proxy", "tlsgate_ca"]


class Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"counted"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class CountingOrigin(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), Hello)
        self.context = context
        self.accepted = 0
        self.handshaken = 0
        self.finished = 0  # connections whose peer (the proxy) closed them

    def get_request(self):  # type: ignore[no-untyped-def]
        sock, address = self.socket.accept()
        self.accepted += 1
        tls = self.context.wrap_socket(sock, server_side=True)
        self.handshaken += 1
        return tls, address

    def shutdown_request(self, request) -> None:  # type: ignore[no-untyped-def]
        self.finished += 1
        super().shutdown_request(request)


@pytest.fixture
def origin(badssl: BadSSL) -> Iterator[CountingOrigin]:
    leaf = make_leaf(["count.test", "first-contact.test"], badssl.intermediate)
    server = CountingOrigin(server_context([leaf.cert, badssl.intermediate.cert], leaf.key))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def tunnel(proxy: ProxyThread, root: Path, port: int) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    raw.sendall(f"CONNECT count.test:{port} HTTP/1.1\r\nHost: count.test:{port}\r\n\r\n".encode())
    assert raw.recv(4096).startswith(b"HTTP/1.1 200")
    return ssl.create_default_context(cafile=str(root)).wrap_socket(raw, server_hostname="count.test")


def wait_for(predicate, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_the_origin_is_dialled_during_the_handshake_and_used_by_the_first_request(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], origin: CountingOrigin
) -> None:
    client = tunnel(proxy, tlsgate_ca[1], origin.server_address[1])
    try:
        assert wait_for(lambda: origin.accepted == 1)  # before any request was sent
        client.sendall(b"GET /one HTTP/1.1\r\nHost: count.test\r\n\r\n")
        reply = b""
        while len(reply) < 200 and not reply.endswith(b"counted"):  # head and body may come apart
            chunk = client.recv(65536)
            if not chunk:
                break
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200")
        assert reply.endswith(b"counted")
        assert origin.accepted == 1  # the request went over the pre-dialled connection
    finally:
        client.close()


def _proxy_with_port_443_at(issuer: LeafIssuer, badssl: BadSSL, port: int) -> ProxyThread:
    """A proxy whose port 443 leads to a test origin (first contact dials on CONNECT only for 443)."""
    settings = ProxySettings(host="127.0.0.1", port=0, upstream_ca=badssl.root_file)
    return ProxyThread(settings, issuer, Policy(), resolve=lambda _host, p: ("127.0.0.1", port if p == 443 else p))


@pytest.fixture
def proxy443(issuer: LeafIssuer, badssl: BadSSL, origin: CountingOrigin) -> Iterator[ProxyThread]:
    thread = _proxy_with_port_443_at(issuer, badssl, origin.server_address[1])
    yield thread
    thread.stop()


def test_first_contact_on_443_dials_on_connect_and_a_client_that_leaves_there_leaves_no_upstream_connection(
    proxy443: ProxyThread, origin: CountingOrigin
) -> None:
    """A host whose leaf is not cached yet: the origin's handshake starts on CONNECT, before any ClientHello."""
    raw = open_tunnel(proxy443, "first-contact.test", 443)
    assert wait_for(lambda: origin.handshaken == 1)  # no TLS byte sent by the client yet
    raw.close()  # the client never speaks
    assert wait_for(lambda: origin.finished == 1)  # and the proxy closed its dial


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("second-contact.test", "another port than 443: it may carry plain HTTP or WebSocket"),
        ("a" * 64 + ".test", "no leaf can be minted for this name"),
    ],
)
def test_no_dial_on_a_bare_connect_that_may_not_become_tls(
    proxy443: ProxyThread, origin: CountingOrigin, host: str, why: str
) -> None:
    port = origin.server_address[1] if host == "second-contact.test" else 443
    raw = open_tunnel(proxy443, host, port)
    time.sleep(0.3)  # a dial on CONNECT reaches the origin within milliseconds
    assert origin.accepted == 0, why
    raw.close()


class Impatient(Hello):
    timeout = 0.3  # closes a connection on which no request came for 0.3 s, as many origins do


def test_a_pre_dialled_connection_the_origin_dropped_is_replaced_not_a_502(
    issuer: LeafIssuer, badssl: BadSSL, tlsgate_ca: tuple[Path, Path]
) -> None:
    leaf = make_leaf(["impatient.test"], badssl.intermediate)
    impatient = CountingOrigin(server_context([leaf.cert, badssl.intermediate.cert], leaf.key))
    impatient.RequestHandlerClass = Impatient
    serving = threading.Thread(target=impatient.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    serving.start()
    proxy = _proxy_with_port_443_at(issuer, badssl, impatient.server_address[1])
    try:
        raw = open_tunnel(proxy, "impatient.test", 443)
        context = ssl.create_default_context(cafile=str(tlsgate_ca[1]))
        with context.wrap_socket(raw, server_hostname="impatient.test") as tls:
            assert wait_for(lambda: impatient.finished == 1)  # the origin gave up on the pre-dialled one
            tls.sendall(b"GET /late HTTP/1.1\r\nHost: impatient.test\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := tls.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200")
        assert reply.endswith(b"counted")
        assert impatient.accepted == 2
    finally:
        proxy.stop()
        impatient.shutdown()
        impatient.server_close()


def test_a_client_that_leaves_after_the_handshake_leaves_no_upstream_connection(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], origin: CountingOrigin
) -> None:
    client = tunnel(proxy, tlsgate_ca[1], origin.server_address[1])
    assert wait_for(lambda: origin.handshaken == 1)  # dialled during the handshake, TLS up
    assert origin.finished == 0
    client.close()
    assert wait_for(lambda: origin.finished == 1)  # and closed when the client left


def _pool(badssl: BadSSL, **kwargs: float) -> tuple[UpstreamPool, ResumingContext]:
    context = upstream_context(badssl.root_file)
    pool = UpstreamPool(
        context, limits=Limits(8192, 65536, 100), connect_timeout=5, resolve=resolve_test_names, **kwargs
    )
    return pool, context


def _resumed(conn: UpstreamConnection) -> bool:
    assert conn.transport is not None
    return bool(conn.transport.get_extra_info("ssl_object").session_reused)


def test_a_second_connection_to_a_host_resumes_the_first_ones_tls_session(
    badssl: BadSSL, origin: CountingOrigin
) -> None:
    async def scenario() -> list[bool]:
        pool, _ = _pool(badssl)
        target = ("https", "count.test", origin.server_address[1])
        first = await pool.connect(target)
        await asyncio.sleep(0.2)  # the origin's TLS 1.3 session tickets arrive after its handshake
        second = await pool.connect(target)  # dialled while the first is open
        resumed = [_resumed(first), _resumed(second)]
        first.close()
        second.close()
        await asyncio.sleep(0.1)  # let the transports finish closing before the loop ends
        return resumed

    assert uvloop.run(scenario()) == [False, True]
    assert origin.handshaken == 2


def test_a_host_whose_idle_connection_timed_out_resumes_on_its_next_visit(
    badssl: BadSSL, origin: CountingOrigin
) -> None:
    async def scenario() -> list[bool]:
        pool, context = _pool(badssl, idle_timeout=30.0)
        target = ("https", "count.test", origin.server_address[1])
        visit = await pool.connect(target)
        await asyncio.sleep(0.2)
        pool.release(visit, now=0.0)
        remembered_while_pooled = ("count.test", origin.server_address[1]) in context.sessions
        pool.sweep(now=31.0)  # idle too long: closed, its session kept
        assert visit.closed
        again = await pool.connect(target)
        resumed = [remembered_while_pooled, _resumed(again)]
        again.close()
        await asyncio.sleep(0.1)
        return resumed

    # a host visited once pays nothing for session bookkeeping until its connection is closed
    assert uvloop.run(scenario()) == [False, True]


def test_a_first_contact_whose_origin_refuses_still_completes_our_handshake_and_names_the_reason(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path]
) -> None:
    """The ClientHello held for the origin dial is released when the dial fails, not left waiting."""
    from proxy_fixtures import free_port

    port = free_port()  # nothing listens there
    raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    raw.sendall(f"CONNECT refusing.test:{port} HTTP/1.1\r\nHost: refusing.test:{port}\r\n\r\n".encode())
    assert raw.recv(4096).startswith(b"HTTP/1.1 200")
    with ssl.create_default_context(cafile=str(tlsgate_ca[1])).wrap_socket(raw, server_hostname="refusing.test") as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: refusing.test\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := tls.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 502 ")
    assert b"connection refused" in reply


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    """What the peer sent until ``marker`` appeared, or until it closed."""
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


class AnswerlessOrigin:
    """Reads one request head per connection, records its request line, then closes (after an
    optional ``100 Continue``) without a response: the origin failing mid-exchange."""

    def __init__(self, context: ssl.SSLContext, interim: bool) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.context = context
        self.interim = interim
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(sock,), daemon=True).start()

    def _one(self, sock: socket.socket) -> None:
        try:
            with self.context.wrap_socket(sock, server_side=True) as tls:
                data = _read_until(tls, b"\r\n\r\n")
                if b"\r\n\r\n" not in data:
                    return
                self.requests.append(data.split(b"\r\n")[0])
                if self.interim:
                    tls.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        except (OSError, ssl.SSLError):
            pass


@pytest.mark.parametrize(
    ("method", "interim", "seen"),
    [
        ("POST", False, 1),  # not idempotent: never sent twice (RFC 9110 §9.2.2)
        ("POST", True, 1),
        ("GET", True, 1),  # a byte came back: the origin had the request
        ("GET", False, 2),  # idempotent, nothing came back: retried once, then the 502
    ],
)
def test_only_idempotent_requests_that_got_no_answer_are_retried(
    issuer: LeafIssuer, badssl: BadSSL, tlsgate_ca: tuple[Path, Path], method: str, interim: bool, seen: int
) -> None:
    leaf = make_leaf(["answerless.test"], badssl.intermediate)
    origin = AnswerlessOrigin(server_context([leaf.cert, badssl.intermediate.cert], leaf.key), interim)
    proxy = _proxy_with_port_443_at(issuer, badssl, origin.port)
    try:
        raw = open_tunnel(proxy, "answerless.test", 443)
        context = ssl.create_default_context(cafile=str(tlsgate_ca[1]))
        with context.wrap_socket(raw, server_hostname="answerless.test") as tls:
            tls.sendall(f"{method} /charge HTTP/1.1\r\nHost: answerless.test\r\nContent-Length: 0\r\n\r\n".encode())
            reply = _read_until(tls, b"502 ")
        assert b"HTTP/1.1 502 " in reply
        time.sleep(0.2)  # a second attempt would have reached the origin by now
        assert origin.requests == [f"{method} /charge HTTP/1.1".encode()] * seen
    finally:
        proxy.stop()
        origin.listener.close()


def test_a_session_is_only_offered_to_the_port_it_came_from(badssl: BadSSL, origin: CountingOrigin) -> None:
    """One name, two servers on two ports: each keeps its own session; neither is offered the other's."""
    leaf = make_leaf(["count.test"], badssl.intermediate)
    other = CountingOrigin(server_context([leaf.cert, badssl.intermediate.cert], leaf.key))
    threading.Thread(target=other.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    async def scenario() -> list[object]:
        pool, context = _pool(badssl)
        first = ("https", "count.test", origin.server_address[1])
        second = ("https", "count.test", other.server_address[1])
        a = await pool.connect(first)
        await asyncio.sleep(0.2)  # the TLS 1.3 tickets arrive after the handshake
        a_again = await pool.connect(first)  # a second dial to first: its session is taken and offered
        b = await pool.connect(second)  # the other port: not offered first's session
        await asyncio.sleep(0.2)
        b_again = await pool.connect(second)
        a_third = await pool.connect(first)  # back to the first port: its own session still stands
        seen = [
            _resumed(a_again) and _resumed(a_third),
            _resumed(b),
            _resumed(b_again),
            sorted(port for _, port in context.sessions),
        ]
        for conn in (a, a_again, b, b_again, a_third):
            conn.close()
        await asyncio.sleep(0.1)
        return seen

    try:
        resumed_first, offered_to_other, resumed_second, ports = uvloop.run(scenario())
    finally:
        other.shutdown()
        other.server_close()
    assert resumed_first is True and resumed_second is True
    assert offered_to_other is False
    assert ports == sorted([origin.server_address[1], other.server_address[1]])


def test_on_first_contact_the_origin_handshake_starts_before_the_mint(
    issuer: LeafIssuer, badssl: BadSSL, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first contact's ClientHello waits (briefly) until the origin dialled on CONNECT has its
    own ClientHello on the wire: the origin's handshake then runs beside our ~1 ms mint instead
    of after it and after our handshake with the client (seen in strace: ~1-2 ms per new host)."""
    import tlsgate.proxy.connect as connect_module

    monkeypatch.setattr(connect_module, "_HOLD_HELLO_FOR_DIAL", 5.0)  # ordering, not timing, is checked
    # The origin's accept queue is full at first, so the proxy's TCP connect takes a SYN
    # retransmission (~1 s): our ClientHello surely arrives first, and must wait for the dial.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname())
    origin_hello_at: list[float] = []

    def origin() -> None:  # records when the proxy's ClientHello arrives, then hangs up
        time.sleep(0.3)
        listener.accept()[0].close()  # the filler: the queue has room again
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            if conn.recv(5):
                origin_hello_at.append(time.monotonic())

    mint_at: list[float] = []

    class Recording:
        def __getattr__(self, name: str) -> object:
            return getattr(issuer, name)

        def get(self, hosts: tuple[str, ...]) -> object:
            if issuer.cached(hosts) is None:
                mint_at.append(time.monotonic())
            return issuer.get(hosts)

    threading.Thread(target=origin, daemon=True).start()
    port = listener.getsockname()[1]
    settings = ProxySettings(host="127.0.0.1", port=0, upstream_ca=badssl.root_file)
    proxy = ProxyThread(settings, Recording(), Policy(), resolve=lambda _h, p: ("127.0.0.1", port if p == 443 else p))  # type: ignore[arg-type]
    try:
        raw = open_tunnel(proxy, "held-hello.test", 443)
        context = ssl.create_default_context()
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        client = context.wrap_bio(incoming, outgoing, server_hostname="held-hello.test")
        with pytest.raises(ssl.SSLWantReadError):
            client.do_handshake()
        with raw:
            sent_at = time.monotonic()
            raw.sendall(outgoing.read())
            raw.settimeout(10)
            assert raw.recv(65536)  # our server flight: the mint happened
        deadline = time.monotonic() + 5
        while not origin_hello_at and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(origin_hello_at) == 1  # the dial got through (after the filler left, ~1 s)
        assert len(mint_at) == 1
        # The mint waited for the dial's ClientHello: it began only once the origin's accept
        # queue had room (>= 0.3 s), not as soon as our ClientHello came.
        assert mint_at[0] - sent_at >= 0.3
    finally:
        proxy.stop()
        listener.close()
        filler.close()


def test_a_connect_the_client_cancelled_before_it_was_read_gets_no_answer_and_no_dial(
    proxy443: ProxyThread, origin: CountingOrigin
) -> None:
    """Clients cancel CONNECTs they no longer need (Go's does when a pooled connection frees up
    first); one that has ended by the time the proxy reads it is closed unanswered, and costs no
    origin dial even on first contact with a host on 443."""
    assert proxy443.loop is not None
    proxy443.loop.call_soon_threadsafe(time.sleep, 0.3)  # the worker is busy: the client waits in the queue
    raw = socket.create_connection(("127.0.0.1", proxy443.port), timeout=5)
    with raw:
        raw.sendall(b"CONNECT cancelled.test:443 HTTP/1.1\r\nHost: cancelled.test:443\r\n\r\n")
        raw.shutdown(socket.SHUT_WR)  # and gives up
        assert raw.recv(4096) == b""  # no 200
    time.sleep(0.3)  # a dial on CONNECT reaches the origin within milliseconds
    assert origin.accepted == 0
    # The same CONNECT from a client still there is answered and dialled as before.
    with open_tunnel(proxy443, "cancelled.test", 443):
        assert wait_for(lambda: origin.accepted == 1)
