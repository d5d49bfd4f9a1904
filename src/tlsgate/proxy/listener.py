"""The proxy's listener for one worker: accepting clients, the once-a-second sweep, draining.

Each accepted socket becomes a :class:`~tlsgate.proxy.server.ClientConnection`; the worker's
shared state lives here: settings, the leaf issuer, the policy, the upstream pool, the access
event sink, the connections (for the connection cap, idle timeouts and shutdown), and the SNI
check that every leaf context calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from tlsgate.ca.names import normalize_host
from tlsgate.errors import TlsgateError
from tlsgate.policy import Policy
from tlsgate.proxy.access import AccessEvent, EventSink
from tlsgate.proxy.config import ProxySettings
from tlsgate.proxy.http1 import Limits
from tlsgate.proxy.server import ClientConnection
from tlsgate.proxy.upstream import ResumingContext, UpstreamPool, upstream_context

__all__ = ["ProxyServer"]


class ProxyServer:
    """One worker's proxy: ``await start()``, then ``port``; ``await drain()`` to stop gracefully."""

    def __init__(
        self,
        settings: ProxySettings,
        issuer: Any,
        policy: Policy,
        *,
        sink: EventSink | None = None,
        tls_context: ResumingContext | None = None,
        reuse_port: bool = False,
        resolve: Callable[[str, int], tuple[str, int]] | None = None,
    ) -> None:
        self.settings = settings
        self.issuer = issuer
        self.policy = policy
        self.sink = sink
        self.limits = Limits(settings.max_request_line, settings.max_header_bytes, settings.max_header_count)
        self.tls_context = tls_context or upstream_context(settings.upstream_ca)
        self.pool = UpstreamPool(
            self.tls_context,
            limits=self.limits,
            connect_timeout=settings.upstream_connect_timeout,
            per_origin=settings.pool_per_origin,
            idle_timeout=settings.pool_idle_timeout,
            max_idle=settings.pool_max_idle,
            resolve=resolve,
        )
        self.resolve = resolve
        self.connections: set[ClientConnection] = set()
        #: every client socket until it is gone (a transport, or a handshake), including ones in TLS shutdown
        self.raw_transports: set[Any] = set()
        self.rejections: deque[AccessEvent] = deque(maxlen=1000)
        self._reuse_port = reuse_port
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self.port = 0
        self.draining = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ClientConnection(self),
            self.settings.host,
            self.settings.port,
            reuse_port=self._reuse_port or None,
            backlog=4096,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ticker = loop.create_task(self._tick())

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            now = loop.time()
            self.pool.sweep(now)
            for conn in list(self.connections):
                conn.check_idle(now)
            flush = getattr(self.sink, "flush", None)
            if flush is not None:
                flush()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def emit(self, event: AccessEvent) -> None:
        if self.sink is not None:
            self.sink(event)

    def sni_callback(self, ssl_object: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> int | None:
        """The handshake already carries the CONNECT host's leaf; the SNI name must be that host.

        The origin is always the CONNECT host (and only that name is checked upstream), so a leaf
        for any other SNI name would vouch for content from somewhere else — e.g. when an on-path
        attacker rewrites the clear-text CONNECT. A different name ends the handshake.
        """
        if not server_name:
            return None  # no SNI: the CONNECT host's leaf stands
        hosts = getattr(context, "tlsgate_hosts", ())
        if server_name in hosts:  # the usual case: already a normalised name (lower case, no dot)
            return None
        try:
            name = normalize_host(server_name)
        except TlsgateError:
            # Not a host name at all (old Go clients, Debian's hey among them, send "host:port"):
            # the CONNECT host's leaf stands, and the client checks it against the name it meant.
            return None
        if name not in hosts:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        return None

    async def drain(self, timeout: float | None = None) -> None:
        """Stop accepting, let in-flight exchanges finish (up to ``timeout``), then close everything."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.drain()
        deadline = asyncio.get_running_loop().time() + (timeout if timeout is not None else self.settings.drain_timeout)
        while self.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        await self.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.abort()
        for transport in list(self.raw_transports):
            transport.abort()
        self.raw_transports.clear()
        self.pool.close()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for task in list(self._tasks):
            task.cancel()
        await asyncio.sleep(0.01)  # let connection_lost callbacks run before the loop goes
        flush = getattr(self.sink, "flush", None)
        if flush is not None:
            flush()
