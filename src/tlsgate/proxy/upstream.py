"""Connections to origins: the verifying TLS client context, TLS session reuse, and the pool.

Verification is as strict as a browser's (RFC 9110 §4.3.4, the NDSS 2017 interception study):
the system trust store plus ``--upstream-ca``, host name checked, TLS 1.2 minimum, Python's
default cipher list (no RC4, 3DES, export, NULL or static-RSA-with-SHA1), security level 2 (so
RSA-1024 keys and SHA-1 signatures are refused). Nothing here can turn verification off.

Idle connections are pooled per ``(scheme, host, port)`` and shared by every client connection
of the worker; TLS sessions are remembered per host and port (one name may front different
servers on different ports) and offered again on the next connection. TLS to origins runs on
OpenSSL's own socket I/O (:mod:`tlsgate.proxy.tlssock`), not on asyncio's memory BIOs;
plain-HTTP origins and bypass tunnels use the loop's TCP transports.

Taking a session out of a connection costs ~0.1 ms (CPython copies it through DER, peer
certificate included), so it is done only when it can pay off: when a second connection to a
host is dialled while one is open, and when the pool closes an idle connection on its timeout
(so a host visited again later resumes). A host visited once never pays for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from tlsgate.errors import ConfigError, RemoteProtocolError
from tlsgate.proxy.events import Event, Limits
from tlsgate.proxy.http1 import ResponseReader
from tlsgate.proxy.tlsdial import open_tls

__all__ = ["Origin", "UpstreamConnection", "UpstreamOwner", "UpstreamPool", "upstream_context"]

Origin = tuple[str, str, int]  # scheme, host, port
_SESSION_CACHE_LIMIT = 4096


class ResumingContext(ssl.SSLContext):
    """An SSLContext that remembers the last session it saw per (host, port) (offered on the next dial)."""

    sessions: dict[tuple[str, int], ssl.SSLSession]

    def remember(self, server: tuple[str, int], session: ssl.SSLSession | None) -> None:
        if session is None:
            return
        if len(self.sessions) >= _SESSION_CACHE_LIMIT:
            self.sessions.clear()
        self.sessions[server] = session


def upstream_context(extra_ca: Path | None = None) -> ResumingContext:
    """The client context for every origin: system store + ``extra_ca``, browser-grade checks."""
    context = ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
    context.sessions = {}
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if extra_ca is not None:
        try:
            context.load_verify_locations(cafile=str(extra_ca))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load upstream CA file {extra_ca}: {exc}") from exc
    context.set_alpn_protocols(["http/1.1"])
    return context


class UpstreamOwner(Protocol):
    """What an exchange offers its upstream connection."""

    def upstream_events(self, events: list[Event]) -> None: ...
    def upstream_raw(self, data: bytes) -> None: ...
    def upstream_failed(self, exc: BaseException) -> None: ...
    def upstream_pause(self) -> None: ...
    def upstream_resume(self) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One connection to an origin; its owner is the exchange using it, or None when idle in the pool."""

    __slots__ = (
        "__weakref__",
        "closed",
        "idle_since",
        "origin",
        "owner",
        "raw",
        "reader",
        "received",
        "reused",
        "transport",
    )

    def __init__(self, origin: Origin, limits: Limits) -> None:
        self.origin = origin
        self.reader = ResponseReader(limits)
        self.owner: UpstreamOwner | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.raw = False  # after 101: bytes go through untouched
        self.reused = False  # it has waited (idle in the pool, or pre-dialled): the origin may have closed it
        self.received = False  # a byte came back during the current exchange
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    # Not a BufferedProtocol reading into one shared buffer: measured, it saved no throughput
    # within this machine's noise, and uvloop's buffered TLS read path left glibc holding ~30 KiB
    # more free memory per origin connection (RSS +15 MiB over 500 first contacts).
    def data_received(self, data: bytes | memoryview) -> None:
        """A view from a TLS origin is valid only during this call: the body in it goes on as a view
        to the client's transport, which copies only what it cannot send at once."""
        owner = self.owner
        if owner is None:  # an idle connection may not speak
            self.close()
            return
        self.received = True
        if self.raw:
            owner.upstream_raw(bytes(data))  # a view (TLS origins) is only valid during this call
            return
        try:
            events = self.reader.feed(data)
        except RemoteProtocolError as exc:
            self.close()
            owner.upstream_failed(exc)
            return
        owner.upstream_events(events)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        owner, self.owner = self.owner, None
        if owner is None:
            return
        if self.raw:
            owner.upstream_failed(exc or ConnectionResetError("origin closed"))
            return
        if exc is not None and self.reader.in_message:
            # A reset, or a TLS connection ended without close_notify: a body read until the
            # close is truncated, not complete (RFC 9112 §9.8) — an injected FIN must not end it.
            owner.upstream_failed(exc)
            return
        try:
            events = self.reader.feed_eof()
        except RemoteProtocolError as error:
            owner.upstream_failed(error)
            return
        if events:
            owner.upstream_events(events)
        owner.upstream_failed(exc or ConnectionResetError("origin closed the connection"))

    def pause_writing(self) -> None:
        if self.owner is not None:
            self.owner.upstream_pause()

    def resume_writing(self) -> None:
        if self.owner is not None:
            self.owner.upstream_resume()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()


class UpstreamPool:
    """Idle upstream connections per origin, shared by all client connections of a worker."""

    def __init__(
        self,
        context: ResumingContext,
        *,
        limits: Limits,
        connect_timeout: float,
        per_origin: int = 64,
        idle_timeout: float = 30.0,
        max_idle: int = 64,
        resolve: Callable[[str, int], tuple[str, int]] | None = None,
    ) -> None:
        self._context = context
        self._limits = limits
        self._connect_timeout = connect_timeout
        self._per_origin = per_origin
        # Idle connections across all origins: each holds ~30 KiB and a socket, and browsing
        # touches many hosts once; beyond this the longest-idle one is closed.
        self._max_idle = max_idle
        self._idle_timeout = idle_timeout
        #: per origin, most recently released last (taken from the right: the warmest)
        self._idle: dict[Origin, deque[UpstreamConnection]] = {}
        #: every idle connection, longest idle first: eviction and the sweep start here
        self._by_age: OrderedDict[UpstreamConnection, None] = OrderedDict()
        #: the newest open connection per https (host, port): a second dial resumes its TLS session
        self._latest: weakref.WeakValueDictionary[tuple[str, int], UpstreamConnection] = weakref.WeakValueDictionary()
        self._resolve = resolve

    @property
    def idle_count(self) -> int:
        return len(self._by_age)

    def has_idle(self, origin: Origin) -> bool:
        return origin in self._idle

    def take_idle(self, origin: Origin, now: float) -> UpstreamConnection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if not idle:
                del self._idle[origin]
            del self._by_age[conn]
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                continue
            if now - conn.idle_since > self._idle_timeout:
                self._close_idle(conn)
                continue
            return conn
        return None

    async def connect(self, origin: Origin, on_hello: Callable[[], None] | None = None) -> UpstreamConnection:
        """A new connection to ``origin``; for https, ``on_hello()`` once our ClientHello is sent."""
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        address = self._resolve(host, port) if self._resolve else (host, port)
        if scheme != "https":
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: UpstreamConnection(origin, self._limits), address[0], address[1]
                )
            return conn
        server = (host, port)
        if server not in self._context.sessions:
            sibling = self._latest.get(server)
            if sibling is not None:  # a second connection to this host: resume the first one's session
                self._remember_session(sibling)
        offered = self._context.sessions.get(server)
        conn = UpstreamConnection(origin, self._limits)
        async with asyncio.timeout(self._connect_timeout):
            # views: a response body goes from the read buffer to the client's SSL_write uncopied
            transport = await open_tls(loop, conn, self._context, address, host, offered, on_hello, views=True)
        self._latest[server] = conn
        ssl_object = transport.get_extra_info("ssl_object")
        if offered is not None and not ssl_object.session_reused and self._context.sessions.get(server) is offered:
            # The session we offered was refused (expired, single-use): forget it, so the next
            # dial takes a fresh one from an open connection.
            del self._context.sessions[server]
        return conn

    def release(self, conn: UpstreamConnection, now: float) -> None:
        """Back to the pool after a complete exchange on a keep-alive connection."""
        conn.owner = None
        if conn.closed or conn.transport is None or conn.transport.is_closing():
            return
        idle = self._idle.get(conn.origin)
        if idle is not None and len(idle) >= self._per_origin:
            conn.close()
            return
        if len(self._by_age) >= self._max_idle:
            self._evict_longest_idle()  # may empty and drop this origin's deque: look it up after
        idle = self._idle.get(conn.origin)
        if idle is None:
            idle = self._idle[conn.origin] = deque()
        conn.idle_since = now
        conn.reused = True
        idle.append(conn)
        self._by_age[conn] = None

    def _evict_longest_idle(self) -> None:
        if self._by_age:
            conn, _ = self._by_age.popitem(last=False)
            self._unlist(conn)
            conn.close()

    def _unlist(self, conn: UpstreamConnection) -> None:
        idle = self._idle.get(conn.origin)
        if idle is not None:
            with contextlib.suppress(ValueError):
                idle.remove(conn)
            if not idle:
                del self._idle[conn.origin]

    def _remember_session(self, conn: UpstreamConnection) -> None:
        transport = conn.transport
        if conn.closed or transport is None or transport.is_closing():
            return
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        session = ssl_object.session
        # A TLS 1.3 session is only resumable once the origin's ticket has arrived.
        if session is not None and (session.has_ticket or ssl_object.version() != "TLSv1.3"):
            self._context.remember((conn.origin[1], conn.origin[2]), session)

    def _close_idle(self, conn: UpstreamConnection) -> None:
        """Close a connection that timed out idle, keeping its TLS session for the host's next visit."""
        if conn.origin[0] == "https":
            self._remember_session(conn)
        conn.close()

    def sweep(self, now: float) -> None:
        """Close connections idle for too long (called about once a second)."""
        for conn in list(self._by_age):
            if conn.closed:
                del self._by_age[conn]
                self._unlist(conn)
            elif now - conn.idle_since > self._idle_timeout:
                del self._by_age[conn]
                self._unlist(conn)
                self._close_idle(conn)

    def close(self) -> None:
        for conn in self._by_age:
            conn.close()
        self._idle.clear()
        self._by_age.clear()
