"""TLS to origins on OpenSSL's socket I/O: handshake, bursts, back-pressure, closing — against a real TLS peer."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import uvloop
from cryptography.hazmat.primitives.serialization import Encoding

from tlsgate.ca import CertificateAuthority, LeafIssuer
from tlsgate.proxy.tlsdial import TLSAccept, open_tls
from tlsgate.proxy.tlssock import TLSSocketTransport


class Origin:
    """A TLS server on 127.0.0.1 for one connection at a time, run by ``behaviour(tls_socket)`` in a thread."""

    def __init__(self, context: ssl.SSLContext, behaviour: Callable[[ssl.SSLSocket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.errors: list[BaseException] = []
        self.done = threading.Event()

        def serve() -> None:
            conn, _ = self.listener.accept()
            try:
                # an EOF without close_notify raises here (SSLEOFError), so tests can tell them apart
                with context.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False) as tls:
                    behaviour(tls)
            except (OSError, ssl.SSLError) as exc:
                self.errors.append(exc)
            finally:
                self.done.set()

        threading.Thread(target=serve, daemon=True).start()

    def close(self) -> None:
        self.listener.close()


class Recorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.paused = 0
        self.resumed = 0
        self.eof = False
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)

    def eof_received(self) -> None:
        self.eof = True

    def pause_writing(self) -> None:
        self.paused += 1

    def resume_writing(self) -> None:
        self.resumed += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context for origin.test, client context trusting only that CA, as the proxy's checks)."""
    ca = CertificateAuthority.init(tmp_path_factory.mktemp("ca") / "ca")
    issuer = LeafIssuer(ca.issuing_material(), clock=ca.clock)
    server = issuer.get(("origin.test",)).context
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.minimum_version = ssl.TLSVersion.TLSv1_2
    client.load_verify_locations(cadata=ca.issuing_material().cert.public_bytes(Encoding.PEM).decode())
    return server, client


def _run(scenario: Callable[[], object]) -> object:
    return uvloop.run(asyncio.wait_for(scenario(), 30))  # type: ignore[arg-type]


def _read_to_the_end(origin: Origin, client: ssl.SSLContext) -> tuple[bytes, bool, BaseException | None]:
    """Dial ``origin``, read until the connection ends: the bytes, whether EOF came, how it ended."""

    async def scenario() -> tuple[bytes, bool, BaseException | None]:
        protocol = Recorder()
        await open_tls(asyncio.get_running_loop(), protocol, client, ("127.0.0.1", origin.port), "origin.test")
        lost = await protocol.lost
        return b"".join(protocol.chunks), protocol.eof, lost

    try:
        return _run(scenario)  # type: ignore[return-value]
    finally:
        origin.close()


def test_a_burst_of_records_arrives_whole_and_eof_follows(pki: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: many records, more than one read buffer

    def behaviour(tls: ssl.SSLSocket) -> None:
        tls.sendall(b"head;")  # a record of its own, then the body
        tls.sendall(payload)
        tls.unwrap()  # close_notify: a clean end

    origin = Origin(pki[0], behaviour)

    received, eof, lost = _read_to_the_end(origin, pki[1])
    assert received == b"head;" + payload
    assert eof and lost is None


def test_an_end_without_close_notify_is_an_error_not_an_eof(pki: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    """RFC 9112 §9.8: a TLS connection that ends without close_notify may have been cut (an
    injected FIN); the protocol gets connection_lost(SSLEOFError), not eof_received()."""
    origin = Origin(pki[0], lambda tls: tls.sendall(b"partial body"))  # then a bare close

    received, eof, lost = _read_to_the_end(origin, pki[1])
    assert received == b"partial body"
    assert not eof
    assert isinstance(lost, ssl.SSLEOFError)


def test_closing_an_origin_connection_does_not_linger(pki: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    """An origin busy sending (a download the client gave up) is not read for seconds after we
    close: connection_lost follows close() at once, and the origin sees the end."""
    stop = threading.Event()

    def behaviour(tls: ssl.SSLSocket) -> None:
        block = b"z" * 65536
        while not stop.is_set():
            tls.sendall(block)  # raises once we are gone

    origin = Origin(pki[0], behaviour)

    async def scenario() -> float:
        protocol = Recorder()
        transport = await open_tls(
            asyncio.get_running_loop(), protocol, pki[1], ("127.0.0.1", origin.port), "origin.test"
        )
        while sum(map(len, protocol.chunks)) < 1_000_000:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        transport.close()
        await protocol.lost
        return time.monotonic() - started

    took = _run(scenario)
    assert origin.done.wait(10)  # the origin's sendall failed: we are gone
    stop.set()
    origin.close()
    assert isinstance(took, float) and took < 1.0


def test_a_certificate_for_another_name_is_refused(pki: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    origin = Origin(pki[0], lambda tls: tls.recv(1))

    async def scenario() -> None:
        await open_tls(asyncio.get_running_loop(), Recorder(), pki[1], ("127.0.0.1", origin.port), "elsewhere.test")

    with pytest.raises(ssl.SSLCertVerificationError):
        _run(scenario)
    origin.close()


def _late_reader(reading: threading.Event, total: int, digest: Any) -> Callable[[ssl.SSLSocket], None]:
    """An origin that reads nothing until ``reading`` is set, then ``total`` bytes into ``digest``, then says done."""

    def behaviour(tls: ssl.SSLSocket) -> None:
        reading.wait(10)
        left = total
        while left:
            data = tls.recv(65536)
            if not data:
                break
            digest.update(data)
            left -= len(data)
        tls.sendall(b"done")

    return behaviour


def test_writes_to_an_origin_that_does_not_read_pause_then_resume_and_arrive_intact(
    pki: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    piece = bytes(range(251)) * 261  # ~64 KiB, not a multiple of a record
    pieces = 64  # ~4 MiB: far more than the socket buffers hold
    reading = threading.Event()
    digest = hashlib.sha256()

    origin = Origin(pki[0], _late_reader(reading, len(piece) * pieces, digest))  # our writes back up

    async def scenario() -> tuple[int, int, bytes]:
        protocol = Recorder()
        transport = await open_tls(
            asyncio.get_running_loop(), protocol, pki[1], ("127.0.0.1", origin.port), "origin.test"
        )
        for _ in range(pieces):
            transport.write(piece)
        paused_while_stuck = protocol.paused
        reading.set()
        while b"done" not in b"".join(protocol.chunks):
            await asyncio.sleep(0.01)
        assert transport.get_write_buffer_size() == 0
        transport.close()
        await protocol.lost
        return paused_while_stuck, protocol.resumed, b"".join(protocol.chunks)

    paused, resumed, answer = _run(scenario)  # type: ignore[misc]
    origin.close()
    assert paused == 1 and resumed == 1
    assert answer == b"done"
    assert digest.digest() == hashlib.sha256(piece * pieces).digest()


def test_views_of_a_reused_buffer_arrive_intact_through_back_pressure(
    pki: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """How the proxy passes a response body on: each write is a view of one buffer, overwritten
    right after the call. What the socket takes at once is sent from the view; what waits for
    room must have been copied, or the origin would get later pieces' bytes in its place."""
    size, pieces = 65_000, 64  # ~4 MiB: far more than the socket buffers hold
    buffer = bytearray(size)
    expected = hashlib.sha256()
    reading = threading.Event()
    digest = hashlib.sha256()

    origin = Origin(pki[0], _late_reader(reading, size * pieces, digest))

    async def scenario() -> int:
        protocol = Recorder()
        transport = await open_tls(
            asyncio.get_running_loop(), protocol, pki[1], ("127.0.0.1", origin.port), "origin.test"
        )
        view = memoryview(buffer)
        for index in range(pieces):
            buffer[:] = bytes([index]) * size  # the next read lands in the same buffer
            expected.update(buffer)
            if index % 2:
                transport.write(view)
            else:
                transport.writelines([view[:100], view[100:]])
        buffer[:] = b"\xee" * size
        paused = protocol.paused
        reading.set()
        while b"done" not in b"".join(protocol.chunks):
            await asyncio.sleep(0.01)
        transport.close()
        await protocol.lost
        return paused

    paused = _run(scenario)
    origin.close()
    assert paused == 1  # the socket did fill: later views were queued, not sent at once
    assert digest.digest() == expected.digest()


def test_an_origin_read_as_views_gives_every_byte_during_the_call(
    pki: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: many records, many reuses of the read buffer
    origin = Origin(pki[0], lambda tls: (tls.sendall(payload), tls.unwrap()))
    kinds: set[type] = set()

    class Copier(Recorder):
        def data_received(self, data: bytes) -> None:
            kinds.add(type(data))
            self.chunks.append(bytes(data))  # what a protocol that keeps data must do

    async def scenario() -> bytes:
        protocol = Copier()
        address = ("127.0.0.1", origin.port)
        await open_tls(asyncio.get_running_loop(), protocol, pki[1], address, "origin.test", views=True)
        assert await protocol.lost is None
        return b"".join(protocol.chunks)

    received = _run(scenario)
    origin.close()
    assert kinds == {memoryview}
    assert received == payload


def test_large_writes_leave_the_socket_uncorked(pki: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    """A write of several records is corked into one segment, and uncorked after: a short write
    that follows leaves at once (a socket left corked would hold it back ~200 ms, or forever)."""
    body = bytes(range(256)) * 400  # 100 KiB: seven records
    got: list[bytes] = []

    def behaviour(tls: ssl.SSLSocket) -> None:
        data = b""
        while len(data) < len(body) + 8:
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
        got.append(data)
        tls.sendall(b"ok")

    origin = Origin(pki[0], behaviour)

    async def scenario() -> tuple[int, int, bytes]:
        protocol = Recorder()
        transport = await open_tls(
            asyncio.get_running_loop(), protocol, pki[1], ("127.0.0.1", origin.port), "origin.test"
        )
        transport.writelines([b"head:", body])
        corked_after_lines = transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK)
        transport.write(body[:3])
        corked_after_write = transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK)
        while b"ok" not in b"".join(protocol.chunks):
            await asyncio.sleep(0.01)
        transport.close()
        await protocol.lost
        return corked_after_lines, corked_after_write, b"".join(protocol.chunks)

    corked_lines, corked_write, answer = _run(scenario)  # type: ignore[misc]
    origin.close()
    assert (corked_lines, corked_write) == (0, 0)
    assert answer == b"ok"
    assert got == [b"head:" + body + body[:3]]


def test_close_sends_what_was_written_then_close_notify(pki: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    got: list[bytes] = []

    def behaviour(tls: ssl.SSLSocket) -> None:
        while data := tls.recv(65536):  # b"" only on the peer's close_notify: a bare EOF raises
            got.append(data)

    origin = Origin(pki[0], behaviour)

    async def scenario() -> None:
        protocol = Recorder()
        transport = await open_tls(
            asyncio.get_running_loop(), protocol, pki[1], ("127.0.0.1", origin.port), "origin.test"
        )
        transport.write(b"x" * 200_000)
        transport.close()
        assert transport.is_closing()
        transport.write(b"after close")  # dropped
        await protocol.lost

    _run(scenario)
    assert origin.done.wait(10)
    origin.close()
    assert b"".join(got) == b"x" * 200_000
    assert origin.errors == []


def test_pause_reading_holds_data_back_until_resumed(pki: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    def behaviour(tls: ssl.SSLSocket) -> None:
        tls.sendall(b"a" * 100_000)
        tls.recv(1)

    origin = Origin(pki[0], behaviour)

    async def scenario() -> tuple[int, int]:
        protocol = Recorder()
        transport: TLSSocketTransport = await open_tls(
            asyncio.get_running_loop(), protocol, pki[1], ("127.0.0.1", origin.port), "origin.test"
        )
        transport.pause_reading()
        await asyncio.sleep(0.3)
        while_paused = sum(map(len, protocol.chunks))
        transport.resume_reading()
        deadline = time.monotonic() + 10
        while sum(map(len, protocol.chunks)) < 100_000 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        transport.abort()
        await protocol.lost
        return while_paused, sum(map(len, protocol.chunks))

    while_paused, total = _run(scenario)  # type: ignore[misc]
    origin.close()
    assert while_paused < 100_000  # reading stopped (what was read before the pause may be there)
    assert total == 100_000


def test_a_failing_protocol_ends_only_its_connection(pki: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    origin = Origin(pki[0], lambda tls: (tls.sendall(b"boom"), tls.recv(1)))
    reported: list[dict[str, object]] = []

    class Failing(Recorder):
        def data_received(self, data: bytes) -> None:
            raise RuntimeError("bug")

    async def scenario() -> BaseException | None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: reported.append(context))
        protocol = Failing()
        await open_tls(loop, protocol, pki[1], ("127.0.0.1", origin.port), "origin.test")
        return await protocol.lost

    lost = _run(scenario)
    origin.close()
    assert isinstance(lost, RuntimeError)
    assert [c["message"] for c in reported] == ["data_received() failed"]


def test_a_closed_port_is_connection_refused(pki: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: a connect is refused

        async def scenario() -> None:
            await open_tls(asyncio.get_running_loop(), Recorder(), pki[1], ("127.0.0.1", port), "origin.test")

        with pytest.raises(ConnectionRefusedError):
            _run(scenario)


async def _accept_client(listener: socket.socket, context: ssl.SSLContext) -> tuple[TLSSocketTransport, Recorder]:
    """Our side of a client connection, as the proxy has it after its handshake (a lingering close)."""
    loop = asyncio.get_running_loop()
    conn, _ = listener.accept()
    conn.setblocking(False)
    done: asyncio.Future[Exception | None] = loop.create_future()
    accepting = TLSAccept(loop, conn, context, done.set_result, timeout=10)
    accepting.begin()
    assert await done is None
    protocol = Recorder()
    return accepting.transport(protocol), protocol


def test_a_close_notify_that_meets_a_full_socket_is_sent_once_there_is_room(
    pki: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """Closing a client connection whose socket is full: the close_notify waits for room instead
    of being cut by the FIN that follows (the client would see a truncated stream).
    OpenSSL's "socket full" answer is forced once here; the rest is real."""
    listener = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []
    ended: list[str] = []

    def client() -> None:
        context = pki[1]
        raw = socket.create_connection(listener.getsockname(), timeout=10)
        with context.wrap_socket(raw, server_hostname="origin.test", suppress_ragged_eofs=False) as tls:
            try:
                while data := tls.recv(65536):  # b"" only after a close_notify
                    got.append(data)
                ended.append("close_notify")
            except ssl.SSLEOFError:
                ended.append("EOF without close_notify")

    thread = threading.Thread(target=client, daemon=True)
    thread.start()

    async def scenario() -> BaseException | None:
        transport, protocol = await _accept_client(listener, pki[0])
        real_unwrap = transport._tls.unwrap
        calls = []

        def unwrap_full_once() -> object:
            calls.append(1)
            if len(calls) == 1:
                raise ssl.SSLWantWriteError("the socket is full")
            return real_unwrap()

        transport._tls.unwrap = unwrap_full_once  # type: ignore[method-assign]
        transport.write(b"the whole response")
        transport.close()
        lost = await protocol.lost
        assert len(calls) >= 2  # tried again once writable
        return lost

    lost = _run(scenario)
    thread.join(10)
    listener.close()
    assert lost is None
    assert b"".join(got) == b"the whole response"
    assert ended == ["close_notify"]


def test_a_lingering_connection_ends_soon_after_its_peer_even_if_never_reported_readable(
    pki: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """A closed client connection lingers until the client ends too. Under load a few sockets
    whose client reset after our FIN were never reported readable by the loop, and waited out
    the whole linger (5 s). Here the linger's reader is never added at all: the connection must
    still end within a second of the client going away, not after 5."""
    listener = socket.create_server(("127.0.0.1", 0))
    client_gone = threading.Event()

    def client() -> None:
        raw = socket.create_connection(listener.getsockname(), timeout=10)
        with pki[1].wrap_socket(raw, server_hostname="origin.test") as tls:
            assert tls.recv(100) == b"response"
            while tls.recv(100):  # until our close_notify
                pass
        client_gone.set()  # it closed (a bare FIN after our close_notify), as a client that is done does

    thread = threading.Thread(target=client, daemon=True)
    thread.start()

    async def scenario() -> tuple[float, BaseException | None]:
        transport, protocol = await _accept_client(listener, pki[0])
        transport._watch_linger = lambda: None  # type: ignore[method-assign]  # a reader that never fires
        transport.write(b"response")
        transport.close()
        assert transport._lingering  # the client has not ended yet: the connection lingers
        await asyncio.get_running_loop().run_in_executor(None, client_gone.wait, 10)
        gone_at = time.monotonic()
        lost = await protocol.lost
        return time.monotonic() - gone_at, lost

    took, lost = _run(scenario)  # type: ignore[misc]
    thread.join(10)
    listener.close()
    assert lost is None
    assert took < 1.0


def test_a_closed_connection_lets_go_of_its_tls_state_at_once(pki: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    """OpenSSL's object for a connection (its buffers and keys) is freed when the connection
    closes, not when Python's cycle collector next runs: the proxy's protocols and transports
    refer to each other. (Kept until then, a run of new connections grew the worker by ~45 MiB.)"""

    class Holder(Recorder):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # a cycle, as every real protocol makes
            self.ssl_object_id = id(transport.get_extra_info("ssl_object")._sslobj)

    origin = Origin(pki[0], lambda tls: (tls.sendall(b"bye"), tls.unwrap()))

    async def scenario() -> int:
        protocol = Holder()
        await open_tls(asyncio.get_running_loop(), protocol, pki[1], ("127.0.0.1", origin.port), "origin.test")
        assert await protocol.lost is None
        await asyncio.sleep(0)
        return protocol.ssl_object_id

    gc.disable()
    try:
        ssl_object_id = _run(scenario)
        alive = {id(o) for o in gc.get_objects() if type(o).__name__ == "_SSLSocket"}
    finally:
        gc.enable()
        origin.close()
    assert ssl_object_id not in alive


def test_loops_in_two_threads_read_views_of_their_own_buffers(pki: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    """OpenSSL fills the read buffer without the GIL: two loops in one process (as in these tests,
    or an embedder's threads) must not share it, or one's views change under the other."""
    payloads = [bytes([n]) * (4 << 20) for n in (0x11, 0x22)]
    digests: list[bytes] = []

    def read_all(payload: bytes) -> None:
        origin = Origin(pki[0], lambda tls: (tls.sendall(payload), tls.unwrap()))
        digest = hashlib.sha256()

        class Hasher(Recorder):
            def data_received(self, data: bytes) -> None:
                digest.update(data)
                time.sleep(0)  # let the other thread's OpenSSL run while this view is out

        async def scenario() -> None:
            protocol = Hasher()
            address = ("127.0.0.1", origin.port)
            await open_tls(asyncio.get_running_loop(), protocol, pki[1], address, "origin.test", views=True)
            await protocol.lost

        try:
            _run(scenario)
        finally:
            origin.close()
        digests.append(digest.digest() + payload[:1])

    threads = [threading.Thread(target=read_all, args=(payload,)) for payload in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    expected = {hashlib.sha256(payload).digest() + payload[:1] for payload in payloads}
    assert set(digests) == expected
