"""The proxy's client connections: requests, CONNECT, TLS interception, tunnels.

The asyncio side of the proxy is this module with ``listener.py`` (accepting, the sweep,
draining), ``upstream.py`` (origin connections and their pool) and ``tlssock.py`` /
``tlsdial.py`` (TLS on OpenSSL's socket I/O). The decisions come from :mod:`tlsgate.policy`,
the certificates from :mod:`tlsgate.ca`, the HTTP/1 parsing from :mod:`tlsgate.proxy.http1`.
Rules kept here:

* after ``CONNECT`` the first client bytes decide: a TLS record starts interception (leaf
  by SNI, falling back to the CONNECT host), anything else is plain HTTP or refused
  (``connect_without_tls``);
* the origin is dialled when the client's ClientHello arrives (it means to talk), not on a bare
  CONNECT (clients that open and abandon connections, as Go's does, would cost a dial each) —
  except on first contact with a host on port 443 (a valid name whose leaf is not cached):
  there the origin's handshake is the slowest step, so it starts on CONNECT, beside the
  client's ClientHello and our mint (other ports often carry plain HTTP or WebSocket);
* the upstream is always the CONNECT host, whatever the Host header or SNI say;
* a client that aborts our handshake with ``unknown_ca`` / ``bad_certificate`` /
  ``certificate_unknown`` is recorded as a ``reject`` event;
* protocol errors get their status (400/414/431) and a closed connection; never a traceback.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import httptools

from tlsgate.ca.names import normalize_host
from tlsgate.errors import RemoteProtocolError, TlsgateError
from tlsgate.policy import Action
from tlsgate.proxy import headers as H
from tlsgate.proxy.access import AccessEvent
from tlsgate.proxy.exchange import Exchange
from tlsgate.proxy.http1 import Data, EndOfMessage, Event, RequestHead, RequestReader, Upgraded
from tlsgate.proxy.tlsdial import TLSAccept
from tlsgate.proxy.tlsinfo import client_rejection, error_page, looks_like_tls
from tlsgate.proxy.upstream import Origin, UpstreamConnection

try:
    import uvloop
    from uvloop.loop import SSLProtocol as _UvSSLProtocol  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - uvloop is a dependency; this keeps plain asyncio usable
    uvloop = None  # type: ignore[assignment]
    _UvSSLProtocol = None

if TYPE_CHECKING:
    from tlsgate.proxy.listener import ProxyServer

__all__ = ["ClientConnection"]

_PROXY, _AWAIT_TLS, _HANDSHAKE, _INTERCEPT, _TUNNEL, _CLOSED = range(6)
#: how long a first contact's ClientHello may wait for the origin's to go out (see _peek_hello)
_HOLD_HELLO_FOR_DIAL = 0.002
_TCP_INFO: int | None = getattr(socket, "TCP_INFO", None)  # Linux: tcpi_state is its first byte
_PEER_FINISHED = frozenset({7, 8, 9})  # TCP_CLOSE, TCP_CLOSE_WAIT, TCP_LAST_ACK (include/net/tcp_states.h)
# reasons to stop reading from the client, as bits
_P_QUEUE, _P_UPSTREAM, _P_PEER = 1, 2, 4


class ClientConnection(asyncio.Protocol):
    """One client: plain proxy requests, then maybe CONNECT → TLS → requests, or a tunnel."""

    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.loop = asyncio.get_event_loop()
        self.transport: Any = None
        self.raw_transport: Any = None
        self.peer = "-"
        self.mode = _PROXY
        self.reader = RequestReader(server.limits)
        self.exchange: Exchange | None = None
        self.queue: deque[Event] = deque()
        self.paused = 0
        self.activity = 0  # bumped per request; the once-a-second sweep compares it
        self.swept_activity = -1
        self.swept_at = 0.0
        self.connect_host = ""
        self.connect_port = 0
        self.pending_connect: tuple[str, int, Action] | None = None
        self.scheme = "http"
        self.tunnel: UpstreamConnection | None = None
        self.tunnel_event: dict[str, Any] = {}
        self.closed = False
        self.draining = False
        self.upgrade_exchange: Exchange | None = None
        #: the last Host header found to name the CONNECT host (see _request)
        self.checked_host: bytes | None = None
        #: the upstream connection dialled while the client's handshake runs (see _start_tls)
        self.preconnect: asyncio.Task[UpstreamConnection] | None = None
        #: after CONNECT: the client socket, watched for its first bytes without reading them
        self.hello: socket.socket | None = None
        #: our handshake with the client, on that socket
        self.accepting: TLSAccept | None = None
        #: the pre-dialled origin's ClientHello is on the wire (or its dial ended)
        self.dial_on_wire = True
        #: a ClientHello waits for that (see _peek_hello)
        self.hello_held: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.mode == _HANDSHAKE:  # the TLS layer under us finished the handshake
            self.transport = transport
            self.mode = _INTERCEPT
            self.scheme = "https"
            self.reader = RequestReader(self.server.limits)
            self._arm_idle()
            return
        self.transport = self.raw_transport = transport
        self.server.raw_transports.add(transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "-"
        server = self.server
        if len(server.connections) >= server.settings.max_connections or server.draining:
            self.closed = True
            self.transport.write(_simple_response(503, "too many connections"))
            transport.close()
            return
        server.connections.add(self)
        self._arm_idle()

    def data_received(self, data: bytes) -> None:
        mode = self.mode
        if mode in (_INTERCEPT, _PROXY):
            try:
                events = self.reader.feed(data)
            except RemoteProtocolError as exc:
                self._protocol_error(exc)
                return
            self._handle(events)
        elif mode == _TUNNEL:
            if self.tunnel is not None and self.tunnel.transport is not None:
                self.tunnel_event["bytes_in"] += len(data)
                self.tunnel.transport.write(data)
        elif mode == _AWAIT_TLS:
            self._first_bytes(data)

    def eof_received(self) -> bool | None:
        tunnel = self.tunnel
        if (
            self.mode == _TUNNEL
            and tunnel is not None
            and tunnel.transport is not None
            and tunnel.transport.can_write_eof()
        ):
            tunnel.transport.write_eof()  # half-close: the other direction may still flow
            return True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.raw_transports.discard(self.raw_transport)
        self._cleanup()

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.pause_upstream_reading()
        elif self.tunnel is not None and self.tunnel.transport is not None:
            self.tunnel.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.resume_upstream_reading()
        elif self.tunnel is not None and self.tunnel.transport is not None:
            self.tunnel.transport.resume_reading()

    # -- requests ---------------------------------------------------------------------
    def _handle(self, events: list[Event]) -> None:
        for index, event in enumerate(events):
            exchange = self.exchange
            if self.queue or (exchange is not None and exchange.request_done):
                self.queue.extend(events[index:])
                self._pause(_P_QUEUE)
                return
            kind = type(event)
            if kind is Data:
                if exchange is not None:
                    exchange.client_data(event.data)  # type: ignore[union-attr]
            elif kind is EndOfMessage:
                if exchange is not None:
                    exchange.client_end()
            elif kind is RequestHead:
                self._request(event)  # type: ignore[arg-type]
            elif kind is Upgraded:
                self._upgraded(event.rest)  # type: ignore[union-attr]
            if self.closed:
                return

    def _request(self, head: RequestHead) -> None:
        self.activity += 1
        if head.method == b"CONNECT":
            self._connect_request(head)
            return
        target = head.target
        if target[:1] == b"/":
            if self.mode != _INTERCEPT:
                self._reply_and_close(400, "this is a proxy: send absolute-form requests or CONNECT")
                return
            origin: Origin = (self.scheme, self.connect_host, self.connect_port)
            path, host_header = target, None
            if head.host is None:
                host_header = _authority(self.connect_host, self.connect_port, self.scheme).encode()
            elif head.host != self.checked_host:  # a client repeats one Host header: check it once
                if not self._is_tunnel_host(head.host):
                    # RFC 9110 §15.5.20: inside a tunnel to one origin, a request for another (domain
                    # fronting past the policy, which only judged the CONNECT host) is misdirected.
                    self._reply_and_close(421, "the Host header names another host than this tunnel")
                    return
                self.checked_host = head.host
        else:
            try:
                url = httptools.parse_url(target)
                scheme = url.schema.decode("ascii").lower()
                host = url.host.decode("idna").lower()
            except (httptools.HttpParserInvalidURLError, UnicodeError, AttributeError):
                self._reply_and_close(400, "invalid request target")
                return
            if scheme not in ("http", "https") or not host:
                self._reply_and_close(400, "unsupported request target")
                return
            port = url.port or (443 if scheme == "https" else 80)
            if self.mode == _INTERCEPT:  # absolute-form inside a tunnel still goes to the CONNECT host
                if host.rstrip(".").strip("[]") != self.connect_host:
                    self._reply_and_close(421, "the request names another host than this tunnel")
                    return
                scheme, host, port = self.scheme, self.connect_host, self.connect_port
            elif self.server.policy.decide(host, port).action is Action.BLOCK:
                self._blocked(head, host, port)
                return
            origin = (scheme, host, port)
            path = (url.path or b"/") + (b"?" + url.query if url.query else b"")
            host_header = _authority(host, port, scheme).encode()
        head_bytes = H.request_head(
            head.method,
            path,
            host_header,
            head.headers,
            head.body_length,
            upgrade=head.upgrade,
            fields=head.fields,
            via=head.via,
        )
        exchange = Exchange(self, head, origin, head_bytes)
        self.exchange = exchange
        exchange.start()

    def _is_tunnel_host(self, host_header: bytes) -> bool:
        try:
            text = host_header.decode("ascii").strip().lower()
        except UnicodeDecodeError:
            return False
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ""
        else:
            host, _, port_text = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
        if port_text and port_text != str(self.connect_port):
            return False
        return host.rstrip(".") == self.connect_host

    def exchange_finished(self, exchange: Exchange) -> None:
        if self.server.sink is not None:
            path = exchange.head.target.decode("latin-1")
            self.server.emit(exchange.access_event(self.peer, "inspect", path))
        if self.exchange is exchange:
            self.exchange = None
        if exchange.truncated:
            self.abort()
            return
        if not exchange.keep_alive or self.draining or not exchange.request_done:
            self._close_soon()
            return
        if self.queue:
            events = list(self.queue)
            self.queue.clear()
            self._resume(_P_QUEUE)
            self._handle(events)
        elif self.exchange is None:
            self._arm_idle()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def writelines(self, pieces: list[bytes]) -> None:
        if self.transport is not None and not self.closed:
            self.transport.writelines(pieces)

    def send_error_page(self, status: int, host: str, reason: str, *, tls: bool) -> None:
        title = "Upstream certificate or TLS failure" if tls and status == 502 else "Upstream unreachable"
        body = error_page(status, title, host, reason)
        self.write(_page_response(status, body))

    def _protocol_error(self, exc: RemoteProtocolError) -> None:
        self._reply_and_close(exc.error_status_hint, str(exc))

    def _reply_and_close(self, status: int, reason: str) -> None:
        if self.exchange is None or not self.exchange.response_started:
            self.write(_simple_response(status, reason))
        if self.server.sink is not None:
            self.server.emit(self._event("-", status, action="inspect", error=reason))
        self._close_soon()

    def _blocked(self, head: RequestHead, host: str, port: int) -> None:
        body = error_page(403, "Blocked by policy", host, "this site is blocked by the gateway's policy")
        self.write(_page_response(403, body))
        if self.server.sink is not None:
            self.server.emit(self._event(head.method.decode(), 403, action="block", host=host, port=port))
        self._close_soon()

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

    # -- tunnels (bypass, and WebSocket after 101) ------------------------------------
    async def _splice(self, host: str, port: int, rest: bytes) -> None:
        started, wall = self.loop.time(), time.time()
        self.tunnel_event = {"start": started, "wall": wall, "bytes_in": len(rest), "bytes_out": 0, "action": "bypass"}
        address = self.server.resolve(host, port) if self.server.resolve else (host, port)
        try:
            async with asyncio.timeout(self.server.settings.upstream_connect_timeout):
                _, conn = await self.loop.create_connection(
                    lambda: UpstreamConnection(("tcp", host, port), self.server.limits), address[0], address[1]
                )
        except (OSError, TimeoutError) as exc:
            self._resume(_P_PEER)
            reason = "upstream connect timeout" if isinstance(exc, TimeoutError) else str(exc.strerror or exc)
            self.write(_simple_response(502, f"cannot reach {host}:{port}: {reason}"))
            self.tunnel_event = {}
            if self.server.sink is not None:
                self.server.emit(self._event("CONNECT", 502, action="bypass", host=host, port=port, error=reason))
            self._close_soon()
            return
        if self.closed:
            conn.close()
            return
        self.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self._become_tunnel(conn, rest)

    def start_upgrade_tunnel(self, upstream: UpstreamConnection, rest: bytes, exchange: Exchange) -> None:
        self.exchange = None
        self.upgrade_exchange = None
        self.tunnel_event = {
            "start": exchange.started,
            "wall": exchange.wall_start,
            "bytes_in": exchange.bytes_in,
            "bytes_out": len(rest),
            "action": "inspect",
            "method": exchange.head.method.decode("latin-1"),
            "path": exchange.head.target.decode("latin-1"),
            "status": 101,
            "scheme": exchange.origin[0],
        }
        self.connect_host, self.connect_port = exchange.origin[1], exchange.origin[2]
        if rest:
            self.write(rest)
        self._become_tunnel(upstream, b"")

    def _become_tunnel(self, conn: UpstreamConnection, rest: bytes) -> None:
        conn.raw = True
        conn.owner = self
        self.tunnel = conn
        self.mode = _TUNNEL
        if rest and conn.transport is not None:
            conn.transport.write(rest)
        self.queue.clear()
        self.paused = _P_PEER
        self._resume(_P_PEER)

    # UpstreamOwner for the tunnel
    def upstream_raw(self, data: bytes) -> None:
        self.tunnel_event["bytes_out"] += len(data)
        self.write(data)

    def upstream_events(self, events: list[Event]) -> None:  # pragma: no cover - raw tunnels have no events
        pass

    def upstream_failed(self, exc: BaseException) -> None:
        self._close_soon()

    def upstream_pause(self) -> None:
        self._pause(_P_UPSTREAM)

    def upstream_resume(self) -> None:
        self._resume(_P_UPSTREAM)

    # -- flow control, timers, closing ------------------------------------------------
    def pause_for_upstream(self) -> None:
        self._pause(_P_UPSTREAM)

    def resume_for_upstream(self) -> None:
        self._resume(_P_UPSTREAM)

    def _pause(self, flag: int) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self.paused |= flag

    def _resume(self, flag: int) -> None:
        if self.paused & flag:
            self.paused &= ~flag
            if not self.paused and self.transport is not None and not self.closed:
                self.transport.resume_reading()

    def _arm_idle(self) -> None:
        self.activity += 1

    def check_idle(self, now: float) -> None:
        """Called about once a second: close a connection idle (or mid-handshake) for too long."""
        if self.exchange is not None or self.upgrade_exchange is not None or self.mode == _TUNNEL:
            return
        if self.activity != self.swept_activity:
            self.swept_activity, self.swept_at = self.activity, now
            return
        settings = self.server.settings
        limit = settings.handshake_timeout if self.mode in (_AWAIT_TLS, _HANDSHAKE) else settings.idle_timeout
        if now - self.swept_at >= limit:
            self.abort()

    def drain(self) -> None:
        """Shutdown: close now when idle, else after the exchange in flight."""
        self.draining = True
        if self.exchange is None and self.upgrade_exchange is None and self.mode in (_PROXY, _INTERCEPT, _AWAIT_TLS):
            self.abort()

    def _close_soon(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()  # flushes what was written first
        self._cleanup()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()
        self._cleanup()

    def take_preconnect(self, origin: Origin) -> asyncio.Task[UpstreamConnection] | None:
        """The connection dialled during the handshake, for the first exchange to that origin."""
        task, self.preconnect = self.preconnect, None
        if task is not None and origin != ("https", self.connect_host, self.connect_port):
            _discard(task)
            return None
        return task

    def _cleanup(self) -> None:
        if self.closed and self not in self.server.connections:
            return
        self.closed = True
        if self.hello_held is not None:
            self.hello_held.cancel()
            self.hello_held = None
        hello = self._unwatch_hello()
        if hello is not None:
            hello.close()
        if self.accepting is not None:
            accepting, self.accepting = self.accepting, None
            self.server.raw_transports.discard(accepting)
            accepting.stop()
        if self.preconnect is not None:  # the client went away before asking for anything
            _discard(self.preconnect)
            self.preconnect = None
        self.mode = _CLOSED
        self.server.connections.discard(self)
        for exchange in (self.exchange, self.upgrade_exchange):
            if exchange is not None:
                exchange.close()
        self.exchange = self.upgrade_exchange = None
        if self.tunnel is not None:
            tunnel, self.tunnel = self.tunnel, None
            tunnel.owner = None
            tunnel.close()
            info = self.tunnel_event
            if info and self.server.sink is not None:
                self.server.emit(
                    AccessEvent(
                        time=info["wall"],
                        client=self.peer,
                        method=info.get("method", "CONNECT"),
                        scheme=info.get("scheme", "tcp"),
                        host=self.connect_host,
                        port=self.connect_port,
                        path=info.get("path", "-"),
                        status=info.get("status", 200),
                        bytes_in=info["bytes_in"],
                        bytes_out=info["bytes_out"],
                        duration_ms=(self.loop.time() - info["start"]) * 1000.0,
                        action=info["action"],
                    )
                )

    def _event(
        self,
        method: str,
        status: int,
        *,
        action: str,
        host: str | None = None,
        port: int | None = None,
        tls_error: str | None = None,
        error: str | None = None,
    ) -> AccessEvent:
        return AccessEvent(
            time=time.time(),
            client=self.peer,
            method=method,
            scheme=self.scheme if self.mode == _INTERCEPT else ("https" if method == "CONNECT" else "http"),
            host=host if host is not None else self.connect_host,
            port=port if port is not None else self.connect_port,
            path="-",
            status=status,
            bytes_in=0,
            bytes_out=0,
            duration_ms=0.0,
            action=action,
            tls_error=tls_error,
            error=error,
        )


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


def _authority(host: str, port: int, scheme: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    if (scheme == "http" and port == 80) or (scheme == "https" and port == 443):
        return shown
    return f"{shown}:{port}"


def _simple_response(status: int, reason: str) -> bytes:
    body = (reason + "\n").encode("utf-8", "replace")
    return (
        H.status_line(status)
        + b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        + body
    )


def _page_response(status: int, body: bytes) -> bytes:
    return (
        H.status_line(status)
        + b"Content-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n"
        + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        + body
    )
