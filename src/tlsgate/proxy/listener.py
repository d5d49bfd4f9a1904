"""The proxy's listener for one worker: accepting clients, the once-a-second sweep, draining.

Each accepted socket becomes a :class:`~tlsgate.proxy.server.ClientConnection`; the worker's
shared state lives here: settings, the leaf issuer, the policy, the upstream pool, the access
event sink, the connections (for the connection cap, idle timeouts and shutdown), and the SNI
check that every leaf context calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from tlsgate.ca.names import normalize_host
from tlsgate.errors import ConfigError, TlsgateError
from tlsgate.policy import Policy
from tlsgate.proxy.access import AccessEvent, EventSink
from tlsgate.proxy.config import ProxySettings
from tlsgate.proxy.events import Limits
from tlsgate.proxy.server import ClientConnection
from tlsgate.proxy.upstream import ResumingContext, UpstreamPool, upstream_context

__all__ = ["ProxyServer"]

logger = logging.getLogger(__name__)

_BACKLOG = 4096
_ACCEPT_BATCH = 64  # connections taken per wake-up of a listening socket (asyncio's servers: 100)
_ACCEPT_RETRY_DELAY = 1.0  # seconds (asyncio's servers wait as long after EMFILE)


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
        self._listeners: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self.port = 0
        self.draining = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.settings.host, self.settings.port
        try:
            infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            self._listeners = _listening_sockets(infos, self._reuse_port)
        except OSError as exc:  # in use, not an address of this machine, an unknown name: one line
            shown = f"[{host}]" if ":" in host else host
            raise ConfigError(f"cannot listen on {shown}:{port}: {exc.strerror or exc}") from None
        self.port = self._listeners[0].getsockname()[1]
        for sock in self._listeners:
            loop.add_reader(sock.fileno(), self._accept, sock)
        self._ticker = loop.create_task(self._tick())

    # -- accepting ----------------------------------------------------------------------
    # The loop's own servers take one connection per loop iteration (uvloop 0.2x, libuv 1.5x):
    # under load a burst of clients then waits in the accept queue for thousands of
    # iterations, and clients that gave up (Go's cancels a dial it no longer needs) are accepted
    # seconds later while new ones queue behind them. Here every wake-up takes what is queued
    # (up to _ACCEPT_BATCH), and the loop's transport is made from the socket as its server would.
    def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, _address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client left while queued
            except OSError as exc:  # out of descriptors or buffers: let the queue wait a moment
                logger.warning("accepting stopped for %.0f s: %s", _ACCEPT_RETRY_DELAY, exc)
                loop.remove_reader(listener.fileno())
                loop.call_later(_ACCEPT_RETRY_DELAY, self._resume_accepting, listener)
                return
            self._adopt(loop, sock)

    def _resume_accepting(self, listener: socket.socket) -> None:
        if not self.draining and listener.fileno() != -1:
            asyncio.get_running_loop().add_reader(listener.fileno(), self._accept, listener)

    def _adopt(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        """The loop's transport for an accepted socket, with its protocol connected now.

        ``connect_accepted_socket`` opens the transport and schedules ``connection_made`` at
        once, then only waits for that; its waiting is driven here from the future's callback
        instead of a task per connection.
        """
        steps = loop.connect_accepted_socket(lambda: ClientConnection(self), sock)
        try:
            waiter = steps.send(None)
        except StopIteration:
            return
        except Exception as exc:  # the socket could not become a transport: this client only
            logger.warning("could not take a connection: %s", exc)
            sock.close()
            return
        waiter.add_done_callback(lambda _done: _finish(steps))

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

    def _stop_accepting(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._listeners:
            if sock.fileno() != -1:
                loop.remove_reader(sock.fileno())
                sock.close()

    async def drain(self, timeout: float | None = None) -> None:
        """Stop accepting, let in-flight exchanges finish (up to ``timeout``), then close everything."""
        self.draining = True
        self._stop_accepting()
        for conn in list(self.connections):
            conn.drain()
        deadline = asyncio.get_running_loop().time() + (timeout if timeout is not None else self.settings.drain_timeout)
        while self.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        await self.close()

    async def close(self) -> None:
        self._stop_accepting()
        for conn in list(self.connections):
            conn.abort("the proxy stopped before the response was complete")
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


def _finish(steps: Any) -> None:
    """The rest of ``connect_accepted_socket`` once ``connection_made`` ran (it returns the pair)."""
    with contextlib.suppress(StopIteration, Exception):  # an error there has closed that transport
        steps.send(None)


def _listening_sockets(infos: list[Any], reuse_port: bool) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every address found (as asyncio's servers)."""
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(_BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets
