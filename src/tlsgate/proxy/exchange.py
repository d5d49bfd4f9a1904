"""One request/response exchange between a client connection and an origin connection.

The exchange owns the upstream connection while it runs: it frames the request body for the
origin, rewrites the response head for the client, streams both bodies with back-pressure
(the reading side pauses while the writing side's buffer is full), and hands the upstream
connection back to the pool when both messages completed on a keep-alive connection.

An idempotent request (RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE) that failed on
a connection that had waited (pooled, or pre-dialled during the handshake) before any response
byte came back, with no body streamed, is retried once on a fresh connection: the origin may have
closed the waiting connection as we wrote. Nothing else is ever sent twice. A waiting connection
found already closed before anything was written to it is replaced, whatever the method.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from tlsgate.errors import RemoteProtocolError
from tlsgate.proxy import headers as H
from tlsgate.proxy.access import AccessEvent
from tlsgate.proxy.events import CHUNKED, Data, EndOfMessage, Event, RequestHead, ResponseHead, Upgraded
from tlsgate.proxy.tlsinfo import upstream_failure_reason
from tlsgate.proxy.upstream import Origin, UpstreamConnection, UpstreamPool

if TYPE_CHECKING:
    from tlsgate.proxy.server import ClientConnection

__all__ = ["Exchange"]

_PENDING_LIMIT = 256 * 1024
# Pieces of a response up to this size are joined into one write (one TLS record); beyond it
# they are written as they are, sparing a copy of the body.
_JOIN_LIMIT = 16 * 1024
_IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"))
_NO_CLIENT_BODY = 0
_CLIENT_CL = 1
_CLIENT_CHUNKED = 2
_CLIENT_CLOSE = 3


class Exchange:
    __slots__ = (
        "bytes_in",
        "bytes_out",
        "client",
        "client_framing",
        "error",
        "head",
        "head_bytes",
        "keep_alive",
        "origin",
        "pending",
        "pending_size",
        "request_done",
        "response_done",
        "response_started",
        "retried",
        "reusable",
        "started",
        "status",
        "truncated",
        "upstream",
        "upstream_paused",
        "wall_start",
    )

    def __init__(self, client: ClientConnection, head: RequestHead, origin: Origin, head_bytes: bytes) -> None:
        self.client = client
        self.head = head
        self.origin = origin
        self.head_bytes = head_bytes
        self.upstream: UpstreamConnection | None = None
        self.pending: list[bytes] = [head_bytes]
        self.pending_size = 0
        self.request_done = False
        self.response_started = False
        self.response_done = False
        self.keep_alive = head.keep_alive
        self.client_framing = _NO_CLIENT_BODY
        self.bytes_in = 0
        self.bytes_out = 0
        self.status = 0
        self.retried = False
        self.reusable = True
        self.upstream_paused = False
        self.error: str | None = None
        self.truncated = False
        self.started = client.loop.time()
        self.wall_start = time.time() if client.server.sink is not None else 0.0

    # -- request side (called by the client connection) ------------------------------
    def start(self) -> None:
        pool = self.client.server.pool
        conn = pool.take_idle(self.origin, self.started)
        preconnect = self.client.take_preconnect(self.origin)
        if conn is not None:
            if preconnect is not None:  # an idle one turned up meanwhile: keep the new one for later
                preconnect.add_done_callback(lambda task: _pool_if_up(pool, task, self.started))
            self._attach(conn)
        else:
            self.client.server.spawn(self._connect(preconnect))

    async def _connect(self, preconnect: asyncio.Task[UpstreamConnection] | None = None) -> None:
        try:
            conn = await (preconnect if preconnect is not None else self.client.server.pool.connect(self.origin))
        except (OSError, TimeoutError, RemoteProtocolError) as exc:
            self._fail_before_response(exc)
            return
        if self.client.closed:
            conn.close()
            return
        if preconnect is not None:
            # Dialled during the handshake, it may have waited a while: if the origin dropped it
            # before our request, that request is retried once on a fresh connection, as for
            # a pooled one.
            conn.reused = True
        self._attach(conn)

    def _attach(self, conn: UpstreamConnection) -> None:
        self.upstream = conn
        conn.owner = self
        conn.received = False
        conn.reader.expect(head_request=self.head.method == b"HEAD")
        transport = conn.transport
        if transport is None or conn.closed:
            if conn.reused and not self.retried:  # it went away while waiting: nothing was sent on it
                self.retried = True
                self.upstream = None
                conn.owner = None
                self.client.server.spawn(self._connect())
                return
            self._fail_before_response(ConnectionResetError("origin closed the connection"))
            return
        pending = self.pending
        transport.write(pending[0] if len(pending) == 1 else b"".join(pending))
        self.pending = []
        self.pending_size = 0
        self.client.resume_for_upstream()

    def client_data(self, data: bytes | memoryview) -> None:
        self.bytes_in += len(data)
        if self.head.body_length == CHUNKED:
            data = b"".join((b"%x\r\n" % len(data), data, b"\r\n"))
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.write(data)
        else:
            self.pending.append(bytes(data))  # kept: never a view of a reused buffer
            self.pending_size += len(data)
            if self.pending_size > _PENDING_LIMIT:
                self.client.pause_for_upstream()

    def client_end(self) -> None:
        self.request_done = True
        if self.head.body_length == CHUNKED:
            upstream = self.upstream
            if upstream is not None and upstream.transport is not None:
                upstream.transport.write(b"0\r\n\r\n")
            else:
                self.pending.append(b"0\r\n\r\n")
        if self.response_done:
            self._finish()

    # -- response side (called by the upstream connection) ----------------------------
    def upstream_events(self, events: list[Event]) -> None:
        out: list[bytes | memoryview] = []  # body pieces may be views, valid during this call (see Data)
        client = self.client
        for event in events:
            if type(event) is Data:
                size = len(event.data)
                self.bytes_out += size
                if self.client_framing == _CLIENT_CHUNKED:
                    out.append(b"".join((b"%x\r\n" % size, event.data, b"\r\n")))
                else:
                    out.append(event.data)
            elif type(event) is ResponseHead:
                if event.status < 200:
                    if event.status == 101 and self.head.upgrade is not None:
                        self.status = 101
                        self.response_started = True
                        out.append(
                            H.response_head(101, event.reason, event.headers, None, keep_alive=True, upgrade=True)
                        )
                        continue
                    out.append(
                        H.response_head(
                            event.status,
                            event.reason,
                            event.headers,
                            None,
                            keep_alive=True,
                            fields=event.fields,
                            via=event.via,
                        )
                    )
                    continue
                self._start_response(event, out)
            elif type(event) is EndOfMessage:
                if not self.response_started or self.status < 200:
                    continue  # the end of an interim 1xx response
                if self.client_framing == _CLIENT_CHUNKED:
                    out.append(b"0\r\n\r\n")
                self.response_done = True
            elif type(event) is Upgraded and self.status == 101:
                if out:
                    client.write(b"".join(out))
                    out = []
                self._switch_to_tunnel(event.rest)
                return
        if out:
            if len(out) == 1:
                client.write(out[0])
            elif len(out[-1]) > _JOIN_LIMIT:  # a head and a large piece of body: not copied into one
                client.writelines(out)
            else:
                client.write(b"".join(out))
        if self.response_done:
            self._finish()

    def _start_response(self, event: ResponseHead, out: list[bytes | memoryview]) -> None:
        self.response_started = True
        self.status = event.status
        length = event.body_length
        original = None
        if length is None:
            self.client_framing = _NO_CLIENT_BODY
            original = H.content_length(event.headers)
        elif length >= 0:
            self.client_framing = _CLIENT_CL
        elif self.head.http_version == "1.1":
            self.client_framing = _CLIENT_CHUNKED
            length = CHUNKED
        else:  # an HTTP/1.0 client: read until close
            self.client_framing = _CLIENT_CLOSE
            self.keep_alive = False
            length = None
        if self.head.upgrade is not None or self.client.draining:
            self.keep_alive = False
        out.append(
            H.response_head(
                event.status,
                event.reason,
                event.headers,
                length,
                keep_alive=self.keep_alive,
                original_length=original,
                fields=event.fields,
                via=event.via,
            )
        )
        if not event.keep_alive:
            self.reusable = False

    def _finish(self) -> None:
        if not self.request_done:
            # the origin answered before the request body ended: this client connection cannot be reused
            self.keep_alive = False
            self._close_upstream()
        upstream = self.upstream
        self.upstream = None
        if upstream is not None:
            if self.upstream_paused and upstream.transport is not None:
                upstream.transport.resume_reading()
            if upstream.reader.in_message or upstream.closed or not self.reusable:
                upstream.close()
            else:
                self.client.server.pool.release(upstream, self.client.loop.time())
        self.client.exchange_finished(self)

    def _switch_to_tunnel(self, rest: bytes) -> None:
        upstream = self.upstream
        self.upstream = None
        if upstream is None:
            return
        self.client.start_upgrade_tunnel(upstream, rest, self)

    def upstream_raw(self, data: bytes) -> None:  # not used: raw mode belongs to the tunnel owner
        self.client.write(data)

    def upstream_failed(self, exc: BaseException) -> None:
        if self.response_done:
            return
        upstream = self.upstream
        self.upstream = None
        if upstream is not None:
            upstream.owner = None
            upstream.close()
        if not self.response_started:
            if (
                upstream is not None
                and upstream.reused
                and not upstream.received
                and not self.retried
                and self.request_done
                and self.bytes_in == 0
                and self.head.method in _IDEMPOTENT
            ):
                self.retried = True
                self.pending = [self.head_bytes]
                if self.head.body_length == CHUNKED:
                    self.pending.append(b"0\r\n\r\n")
                self.client.server.spawn(self._connect())
                return
            self._fail_before_response(exc)
            return
        # mid-response: the client sees a truncated message and a connection ended without a
        # close_notify (an HTTP/1.0 client reading to the close must not take it as complete)
        self.error = f"origin failed mid-response: {upstream_failure_reason(exc)}"
        self.truncated = True
        self.keep_alive = False
        self.client.exchange_finished(self)

    def _fail_before_response(self, exc: BaseException) -> None:
        reason = upstream_failure_reason(exc)
        self.error = reason
        status = 504 if isinstance(exc, TimeoutError) else 502
        self.status = status
        self.keep_alive = False
        self.response_started = True
        self.client.send_error_page(status, self.origin[1], reason, tls=self.origin[0] == "https")
        self.client.exchange_finished(self)

    def upstream_pause(self) -> None:
        self.client.pause_for_upstream()

    def upstream_resume(self) -> None:
        self.client.resume_for_upstream()

    def pause_upstream_reading(self) -> None:
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None and not self.upstream_paused:
            self.upstream_paused = True
            upstream.transport.pause_reading()

    def resume_upstream_reading(self) -> None:
        upstream = self.upstream
        if self.upstream_paused and upstream is not None and upstream.transport is not None:
            self.upstream_paused = False
            upstream.transport.resume_reading()

    def _close_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.owner = None
            self.upstream.close()
            self.upstream = None

    def close(self) -> None:
        """The client went away."""
        self._close_upstream()

    def access_event(self, client: str, action: str, path: str) -> AccessEvent:
        scheme, host, port = self.origin
        return AccessEvent(
            time=self.wall_start,
            client=client,
            method=self.head.method.decode("latin-1"),
            scheme=scheme,
            host=host,
            port=port,
            path=path,
            status=self.status,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            duration_ms=(self.client.loop.time() - self.started) * 1000.0,
            action=action,
            tls_error=self.error if self.error and scheme == "https" and self.status == 502 else None,
            error=self.error,
        )


def _pool_if_up(pool: UpstreamPool, task: asyncio.Task[UpstreamConnection], now: float) -> None:
    if not task.cancelled() and task.exception() is None:
        pool.release(task.result(), now)
