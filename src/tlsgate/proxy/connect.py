"""What follows a client's CONNECT: interception, i.e. our TLS with the client, or a bypass.

A part of :class:`~tlsgate.proxy.server.ClientConnection` (see ``state.py``). Rules kept here:

* after ``CONNECT`` the first client bytes decide: a TLS record starts interception (leaf
  by SNI, falling back to the CONNECT host), anything else is plain HTTP or refused
  (``connect_without_tls``); a client that has already left gets no answer at all;
* the client's ClientHello is left in the kernel for OpenSSL's socket I/O (see ``tlssock``);
  one already read with the CONNECT goes through the loop's TLS;
* the origin is dialled when the client's ClientHello arrives (it means to talk), not on a bare
  CONNECT (clients that open and abandon connections, as Go's does, would cost a dial each) —
  except on first contact with a host on port 443 (a valid name whose leaf is not cached):
  there the origin's handshake is the slowest step, so it starts on CONNECT, beside the
  client's ClientHello and our mint (other ports often carry plain HTTP or WebSocket);
* the upstream is always the CONNECT host, whatever the Host header or SNI say;
* a client that aborts our handshake with ``unknown_ca`` / ``bad_certificate`` /
  ``certificate_unknown`` is recorded as a ``reject`` event;
* a bypassed host becomes a byte-for-byte tunnel (``tunnel.py``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from typing import Any

from tlsgate.ca.names import normalize_host
from tlsgate.errors import TlsgateError
from tlsgate.policy import Action
from tlsgate.proxy.events import RequestHead
from tlsgate.proxy.http1 import RequestReader
from tlsgate.proxy.state import _AWAIT_TLS, _HANDSHAKE, _INTERCEPT, _P_PEER, _PROXY, ConnectionState
from tlsgate.proxy.tlsdial import TLSAccept
from tlsgate.proxy.tlsinfo import client_rejection, looks_like_tls
from tlsgate.proxy.upstream import Origin, UpstreamConnection

try:
    import uvloop
    from uvloop.loop import SSLProtocol as _UvSSLProtocol  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - uvloop is a dependency; this keeps plain asyncio usable
    uvloop = None  # type: ignore[assignment]
    _UvSSLProtocol = None

__all__ = ["ConnectHandling"]

#: how long a first contact's ClientHello may wait for the origin's to go out (see _peek_hello)
_HOLD_HELLO_FOR_DIAL = 0.002
_TCP_INFO: int | None = getattr(socket, "TCP_INFO", None)  # Linux: tcpi_state is its first byte
_PEER_FINISHED = frozenset({7, 8, 9})  # TCP_CLOSE, TCP_CLOSE_WAIT, TCP_LAST_ACK (include/net/tcp_states.h)


class ConnectHandling(ConnectionState):
    """CONNECT and the TLS hand-over: a part of ClientConnection (see the module docstring)."""

    # -- CONNECT ----------------------------------------------------------------------
    def _connect_request(self, head: RequestHead) -> None:
        if self.mode != _PROXY:
            self._reply_and_close(400, "CONNECT inside a tunnel")
            return
        host, port = _split_authority(head.target.decode("latin-1"))
        if not host or not port:
            self._reply_and_close(400, "CONNECT wants host:port")
            return
        decision = self.server.policy.decide(host, port)
        if decision.action is Action.BLOCK:
            self._blocked(head, host, port)
            return
        self.connect_host, self.connect_port = host, port
        self.pending_connect = (host, port, decision.action)

    def _upgraded(self, rest: bytes) -> None:
        if self.pending_connect is None:
            exchange = self.exchange
            if exchange is not None and exchange.head.upgrade is not None:
                self.upgrade_exchange = exchange
                self._pause(_P_PEER)  # nothing more until the origin switched protocols
                if rest:
                    exchange.client_data(rest)
                return
            self._reply_and_close(400, "unexpected protocol upgrade")
            return
        host, port, action = self.pending_connect
        self.pending_connect = None
        if action is Action.BYPASS:
            self._pause(_P_PEER)
            self.server.spawn(self._splice(host, port, rest))
            return
        if not rest and _client_finished(self.transport):
            # The client ended its side before its first byte: no ClientHello can come. Clients
            # cancel CONNECTs they no longer need (Go's does, when a pooled connection freed up
            # first), and under load such connections wait in the accept queue: answer none of
            # them (no 200 to a closed socket, no watch, no origin dial), close.
            self.abort()
            return
        self.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.mode = _AWAIT_TLS
        if port == 443 and self.server.issuer.cached((host,)) is None and _is_host_name(host):
            # First contact with this host: its leaf is minted when the ClientHello comes, and the
            # origin's handshake (the slowest step) starts now instead of after both.
            self._dial_origin()
        self._arm_idle()
        if rest:
            self._first_bytes(rest)
        else:
            self._watch_hello()

    def _watch_hello(self) -> None:
        """Wait for the client's first bytes on the socket itself, leaving them in the kernel.

        A ClientHello is then left for OpenSSL to read from the socket (see tlssock: no memory
        BIOs, no per-connection loop buffer); anything else is read by the loop's transport as
        before. The bytes may already have been read with the CONNECT (``rest``): then the loop's
        TLS serves the connection.
        """
        raw = self.transport
        sock = raw.get_extra_info("socket")
        if sock is None or raw.get_write_buffer_size() or self.closed:
            return  # the 200 is not out yet (it must go before the handshake's bytes): the loop's TLS
        try:
            hello = socket.socket(fileno=os.dup(sock.fileno()))
            hello.setblocking(False)
        except OSError:
            return
        raw.pause_reading()
        self.hello = hello
        self.loop.add_reader(hello.fileno(), self._peek_hello)

    def _unwatch_hello(self) -> socket.socket | None:
        hello, self.hello = self.hello, None
        if hello is not None:
            self.loop.remove_reader(hello.fileno())
        return hello

    def _peek_hello(self) -> None:
        if self.hello is None:
            return
        try:
            first = self.hello.recv(2, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            first = b""
        if first and looks_like_tls(first):
            if not self.dial_on_wire:
                # First contact: the origin was dialled on CONNECT but its ClientHello is not out
                # yet (the name was being resolved). Our mint would hold the loop for ~1 ms and
                # the origin's handshake would start only after it — and after ours with the
                # client. Let the origin's ClientHello go first, so its handshake runs beside
                # the mint (bounded: a slow resolver does not hold the client back).
                self.loop.remove_reader(self.hello.fileno())
                self.hello_held = self.loop.call_later(_HOLD_HELLO_FOR_DIAL, self._release_hello)
                return
            self._accept_tls()
            return
        hello = self._unwatch_hello()  # not TLS, or the client left: the loop's transport reads it
        if hello is not None:
            hello.close()
        if not self.closed and self.transport is not None:
            self.transport.resume_reading()

    def _origin_hello_sent(self) -> None:
        self.dial_on_wire = True
        if self.hello_held is not None:
            self._release_hello()

    def _release_hello(self) -> None:
        if self.hello_held is not None:
            self.hello_held.cancel()
            self.hello_held = None
        if self.hello is not None and not self.closed:
            self._accept_tls()

    def _accept_tls(self) -> None:
        self.activity += 1
        hello = self._unwatch_hello()
        context = self._leaf_context()
        if hello is None or context is None:
            if hello is not None:
                hello.close()
            return
        # The socket is OpenSSL's from here: the loop's transport lets go of its descriptor (the
        # connection lives on in ours) and of this protocol.
        raw, self.transport = self.raw_transport, None
        self.server.raw_transports.discard(raw)
        raw.set_protocol(asyncio.Protocol())
        raw.abort()
        self.mode = _HANDSHAKE
        accepting = TLSAccept(
            self.loop, hello, context, self._tls_accepted, timeout=self.server.settings.handshake_timeout
        )
        self.accepting = self.raw_transport = accepting
        self.server.raw_transports.add(accepting)
        accepting.begin()

    def _tls_accepted(self, exc: Exception | None) -> None:
        accepting = self.accepting
        self.accepting = None
        self.server.raw_transports.discard(accepting)
        if exc is not None or accepting is None or self.closed:
            if exc is not None:
                self._handshake_failed(exc)
            if accepting is not None:
                accepting.stop()
            self._cleanup()
            return
        transport = accepting.transport(self)  # connection_made: requests from here
        self.raw_transport = transport
        self.server.raw_transports.add(transport)

    def _first_bytes(self, data: bytes) -> None:
        self.activity += 1
        if looks_like_tls(data):
            self._start_tls(data)
        elif self.server.settings.connect_without_tls == "http":
            self.mode = _INTERCEPT
            self.scheme = "http"
            self.reader = RequestReader(self.server.limits)
            self.data_received(data)
        else:
            if self.server.sink is not None:
                self.server.emit(self._event("CONNECT", 400, action="inspect", error="CONNECT without TLS refused"))
            self.abort()

    def _start_tls(self, data: bytes) -> None:
        context = self._leaf_context()
        if context is not None:
            self._handshake(context, data)

    def _leaf_context(self) -> ssl.SSLContext | None:
        """The leaf's server context for a ClientHello that came; None (and closed) on failure."""
        try:
            context: ssl.SSLContext = self.server.issuer.get((self.connect_host,)).context
        except TlsgateError as exc:
            if self.server.sink is not None:
                self.server.emit(self._event("CONNECT", 0, action="inspect", tls_error=str(exc)))
            self.abort()
            return None
        if context.sni_callback is None:
            context.sni_callback = self.server.sni_callback
        # The client has sent a ClientHello, so it means to talk: dial the origin now (unless that
        # began on CONNECT), while our handshake with the client runs, instead of after it.
        if self.preconnect is None:
            self._dial_origin()
        return context

    def _dial_origin(self) -> None:
        origin: Origin = ("https", self.connect_host, self.connect_port)
        if not self.server.pool.has_idle(origin):
            self.dial_on_wire = False
            self.preconnect = self.loop.create_task(self.server.pool.connect(origin, self._origin_hello_sent))
            self.preconnect.add_done_callback(_consume_exception)
            self.preconnect.add_done_callback(lambda _task: self._origin_hello_sent())

    def _handshake(self, context: ssl.SSLContext, data: bytes) -> None:
        """Our handshake through the loop's TLS, for a ClientHello the loop already read."""
        waiter = self.loop.create_future()
        factory = _UvSSLProtocol if uvloop is not None and isinstance(self.loop, uvloop.Loop) else _asyncio_ssl()
        tls = factory(
            self.loop,
            self,
            context,
            waiter,
            server_side=True,
            ssl_handshake_timeout=self.server.settings.handshake_timeout,
        )
        self.mode = _HANDSHAKE
        raw = self.transport
        raw.set_protocol(tls)
        tls.connection_made(raw)
        waiter.add_done_callback(self._handshake_done)
        view = memoryview(data)
        while view:
            buffer = tls.get_buffer(len(view))
            size = min(len(buffer), len(view))
            buffer[:size] = view[:size]
            tls.buffer_updated(size)
            view = view[size:]

    def _handshake_done(self, waiter: asyncio.Future[None]) -> None:
        exc = None if waiter.cancelled() else waiter.exception()
        if exc is None or self.mode != _HANDSHAKE:
            return
        self._handshake_failed(exc)
        self._cleanup()
        if self.raw_transport is not None:
            self.server.raw_transports.discard(self.raw_transport)
            self.raw_transport.abort()

    def _handshake_failed(self, exc: BaseException) -> None:
        alert = client_rejection(exc)
        if alert is not None:
            event = self._event("CONNECT", 0, action="reject", tls_error=f"client rejected our certificate: {alert}")
            self.server.rejections.append(event)
            self.server.emit(event)
        elif self.server.sink is not None:
            self.server.emit(self._event("CONNECT", 0, action="inspect", tls_error=f"client handshake failed: {exc}"))

    def take_preconnect(self, origin: Origin) -> asyncio.Task[UpstreamConnection] | None:
        """The connection dialled during the handshake, for the first exchange to that origin."""
        task, self.preconnect = self.preconnect, None
        if task is not None and origin != ("https", self.connect_host, self.connect_port):
            _discard(task)
            return None
        return task


def _consume_exception(task: asyncio.Task[UpstreamConnection]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved here; the exchange that awaits it reports it to the client


def _discard(task: asyncio.Task[UpstreamConnection]) -> None:
    """Cancel a pre-dialled connection, or close it if it is already up."""
    if not task.done():
        task.cancel()
    elif not task.cancelled() and task.exception() is None:
        task.result().close()


def _asyncio_ssl() -> Any:
    from asyncio import sslproto

    return sslproto.SSLProtocol


def _client_finished(transport: asyncio.BaseTransport) -> bool:
    """The peer's FIN has arrived (TCP state CLOSE_WAIT or later), read or not; Linux only."""
    if _TCP_INFO is None:
        return False
    sock = transport.get_extra_info("socket")
    try:
        state = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 1)[0] if sock is not None else 0
    except OSError:
        return False
    return state in _PEER_FINISHED


def _is_host_name(host: str) -> bool:
    try:
        normalize_host(host)
    except TlsgateError:
        return False
    return True


def _split_authority(authority: str) -> tuple[str, int]:
    host, sep, port = authority.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return "", 0
    host = host.strip("[]").lower()
    return host, int(port)
