"""The proxy's client connections: plain proxy requests and requests inside intercepted TLS.

The asyncio side of the proxy is this module with its parts ``connect.py`` (what follows a
CONNECT: our TLS with the client) and ``tunnel.py`` (bypass and upgrade tunnels), ``listener.py``
(accepting, the sweep, draining), ``upstream.py`` (origin connections and their pool) and
``tlssock.py`` / ``tlsdial.py`` (TLS on OpenSSL's socket I/O). The decisions come from
:mod:`tlsgate.policy`, the certificates from :mod:`tlsgate.ca`, the HTTP/1 parsing from
:mod:`tlsgate.proxy.http1`. Rules kept here:

* requests are handled one at a time per connection, in order: pipelined ones are queued and
  reading pauses until the exchange in flight ends;
* inside an intercepted connection the upstream is always the CONNECT host: a request whose Host
  header or absolute-form target names another host gets 421 (RFC 9110 §15.5.20);
* protocol errors get their status (400/414/431) and a closed connection; never a traceback.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

import httptools

from tlsgate.errors import RemoteProtocolError
from tlsgate.policy import Action
from tlsgate.proxy import headers as H
from tlsgate.proxy.access import AccessEvent
from tlsgate.proxy.connect import ConnectHandling, _discard
from tlsgate.proxy.events import Data, EndOfMessage, Event, RequestHead, Upgraded
from tlsgate.proxy.exchange import Exchange
from tlsgate.proxy.headers import page_response, simple_response
from tlsgate.proxy.http1 import RequestReader
from tlsgate.proxy.state import _AWAIT_TLS, _CLOSED, _HANDSHAKE, _INTERCEPT, _P_QUEUE, _P_UPSTREAM, _PROXY, _TUNNEL
from tlsgate.proxy.tlsdial import TLSAccept
from tlsgate.proxy.tlsinfo import error_page
from tlsgate.proxy.tlssock import TLSSocketTransport
from tlsgate.proxy.tunnel import Tunnels
from tlsgate.proxy.upstream import Origin, UpstreamConnection

if TYPE_CHECKING:
    import socket

    from tlsgate.proxy.listener import ProxyServer

__all__ = ["ClientConnection"]


class ClientConnection(ConnectHandling, Tunnels):
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
        #: the client closed its sending side after a whole request (plain HTTP): see eof_received
        self.half_closed = False
        #: the client's EOF closed the connection (an exchange cut by it is logged as such)
        self.client_eof = False
        self.upgrade_exchange: Exchange | None = None
        #: the last Host header found to name the CONNECT host (see _request)
        self.checked_host: bytes | None = None
        #: the upstream connection dialled while the client's handshake runs (connect.py: _dial_origin)
        self.preconnect: asyncio.Task[UpstreamConnection] | None = None
        #: after CONNECT: the client socket, watched for its first bytes without reading them
        self.hello: socket.socket | None = None
        #: our handshake with the client, on that socket
        self.accepting: TLSAccept | None = None
        #: the pre-dialled origin's ClientHello is on the wire (or its dial ended)
        self.dial_on_wire = True
        #: a ClientHello waits for that (connect.py: _peek_hello)
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
            self.transport.write(simple_response(503, "too many connections"))
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
        exchange = self.exchange
        plain = self.scheme == "http" and self.mode in (_PROXY, _INTERCEPT)
        if plain and exchange is not None and exchange.request_done:
            # A plain-HTTP client closed its sending side after a whole request (a half-close, as
            # `printf ... | nc -N` and scripts do): it will send nothing more, yet waits for the
            # answer. The response goes out (with Connection: close), then we close; a FIN is also
            # how a client gives up, so the answer is waited for only as long as an idle client.
            # (Inside TLS, a close_notify or a FIN ends the connection, as in nginx and Squid:
            # clients send close_notify when they give up, and a TLS 1.3 half-close is rare.)
            self.half_closed = True
            self._arm_idle()
            self.drain()
            return True
        self.client_eof = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.raw_transports.discard(self.raw_transport)
        if not self.closed:  # the client ended it, not we
            self._record_unfinished("client closed the connection" if exc is None else f"client connection lost: {exc}")
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
        if self.closed:  # ended under it (_lost_under_write): recorded there
            return
        if self.server.sink is not None:
            self._emit_exchange(exchange)
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

    def write(self, data: bytes | memoryview) -> None:
        transport = self.transport
        if transport is not None and not self.closed:
            if type(data) is memoryview and type(transport) is not TLSSocketTransport:
                data = bytes(data)  # a view of a reused buffer; the loop's transports may keep what they get
            transport.write(data)
            if transport.is_closing():
                self._lost_under_write()

    def writelines(self, pieces: list[bytes | memoryview]) -> None:
        transport = self.transport
        if transport is not None and not self.closed:
            if type(transport) is not TLSSocketTransport:
                pieces = [bytes(piece) if type(piece) is memoryview else piece for piece in pieces]
            transport.writelines(pieces)
            if transport.is_closing():
                self._lost_under_write()

    def _lost_under_write(self) -> None:
        """The client's connection failed under a write, or is closing: nothing more reaches it.

        Ended now, not when the transport reports the loss (a loop round later): else the
        exchange would go on reading the origin into a dropped connection — a cancelled 20 MB
        download read to its end in one callback, and logged as sent whole.
        """
        self._record_unfinished(
            "client closed the connection" if self.client_eof else "client connection lost while the response was sent"
        )
        self._cleanup()

    def send_error_page(self, status: int, host: str, reason: str, *, tls: bool) -> None:
        title = "Upstream certificate or TLS failure" if tls and status == 502 else "Upstream unreachable"
        body = error_page(status, title, host, reason)
        self.write(page_response(status, body))

    def _protocol_error(self, exc: RemoteProtocolError) -> None:
        self._reply_and_close(exc.error_status_hint, str(exc))

    def _reply_and_close(self, status: int, reason: str) -> None:
        exchange = self.exchange
        if exchange is None or not exchange.response_started:
            self.write(simple_response(status, reason))
            if exchange is not None:
                exchange.status = status
        if exchange is not None:  # the request in flight is what is logged, with why it ended
            self._record_unfinished(reason)
        elif self.server.sink is not None:
            self.server.emit(self._event("-", status, action="inspect", error=reason))
        self._close_soon()

    def _blocked(self, head: RequestHead, host: str, port: int) -> None:
        body = error_page(403, "Blocked by policy", host, "this site is blocked by the gateway's policy")
        self.write(page_response(403, body))
        if self.server.sink is not None:
            self.server.emit(self._event(head.method.decode(), 403, action="block", host=host, port=port))
        self._close_soon()

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
        """Called about once a second: close a connection idle (or mid-handshake) for too long.

        A client waiting for its response is not idle, unless it half-closed (see eof_received):
        then the origin has the idle timeout to start answering.
        """
        exchange = self.exchange
        if self.upgrade_exchange is not None or self.mode == _TUNNEL:
            return
        if exchange is not None and (not self.half_closed or exchange.response_started):
            return
        if self.activity != self.swept_activity:
            self.swept_activity, self.swept_at = self.activity, now
            return
        settings = self.server.settings
        limit = settings.handshake_timeout if self.mode in (_AWAIT_TLS, _HANDSHAKE) else settings.idle_timeout
        if now - self.swept_at >= limit:
            self.abort(f"the client closed its side; no answer from the origin in {limit:g} s" if exchange else None)

    def drain(self) -> None:
        """Shutdown: close now when idle, else after the exchange in flight."""
        self.draining = True
        if self.exchange is None and self.upgrade_exchange is None and self.mode in (_PROXY, _INTERCEPT, _AWAIT_TLS):
            self.abort()

    def _close_soon(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()  # flushes what was written first
        self._cleanup()

    def abort(self, reason: str | None = None) -> None:
        """Close now; ``reason`` records the exchange in flight, if any (the proxy's shutdown)."""
        if reason is not None and not self.closed:
            self._record_unfinished(reason)
        if self.transport is not None and not self.closed:
            self.transport.abort()
        self._cleanup()

    def _record_unfinished(self, reason: str) -> None:
        """The access event of an exchange cut short by the connection's end: what was sent so far.

        Every request is in the log, answered or not (a download cut by the client, a request
        whose client reset or closed the connection, one cut by the shutdown): its status is what
        the client got (0: nothing), its error why it ended, its bytes what was handed on to it.
        """
        exchange = self.exchange or self.upgrade_exchange
        if exchange is not None and self.server.sink is not None:
            exchange.error = exchange.error or reason
            self._emit_exchange(exchange)

    def _emit_exchange(self, exchange: Exchange) -> None:
        self.server.emit(exchange.access_event(self.peer, "inspect", exchange.head.target.decode("latin-1")))

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


def _authority(host: str, port: int, scheme: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    if (scheme == "http" and port == 80) or (scheme == "https" and port == 443):
        return shown
    return f"{shown}:{port}"
