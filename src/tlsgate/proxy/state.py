"""A client connection's state and modes, shared by the parts of ``ClientConnection``.

:class:`~tlsgate.proxy.server.ClientConnection` (requests) is made of parts in their own
modules: ``connect.py`` (what follows a CONNECT: our TLS with the client) and ``tunnel.py``
(byte-for-byte tunnels). Its state is set in ``ClientConnection.__init__``; :class:`ConnectionState`
declares it, and the methods the parts call on one another, for the type checker, and builds the
access events every part records.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from tlsgate.policy import Action
from tlsgate.proxy.access import AccessEvent
from tlsgate.proxy.events import Event, RequestHead
from tlsgate.proxy.http1 import RequestReader
from tlsgate.proxy.tlsdial import TLSAccept
from tlsgate.proxy.upstream import UpstreamConnection

if TYPE_CHECKING:
    from tlsgate.proxy.exchange import Exchange
    from tlsgate.proxy.listener import ProxyServer

__all__ = ["ConnectionState"]

# The connection's modes, and its reasons to stop reading from the client (bits).
_PROXY, _AWAIT_TLS, _HANDSHAKE, _INTERCEPT, _TUNNEL, _CLOSED = range(6)
_P_QUEUE, _P_UPSTREAM, _P_PEER = 1, 2, 4


class ConnectionState(asyncio.Protocol):
    """What ClientConnection and its parts share: its state (declared), and its access events."""

    # the state (set in ClientConnection.__init__)
    server: ProxyServer
    peer: str
    loop: asyncio.AbstractEventLoop
    transport: Any
    raw_transport: Any
    mode: int
    closed: bool
    activity: int
    paused: int
    reader: RequestReader
    queue: deque[Event]
    exchange: Exchange | None
    upgrade_exchange: Exchange | None
    scheme: str
    connect_host: str
    connect_port: int
    pending_connect: tuple[str, int, Action] | None
    tunnel: UpstreamConnection | None
    tunnel_event: dict[str, Any]
    preconnect: asyncio.Task[UpstreamConnection] | None
    hello: socket.socket | None
    accepting: TLSAccept | None
    dial_on_wire: bool
    hello_held: asyncio.TimerHandle | None

    if TYPE_CHECKING:  # methods of ClientConnection and its parts that the other parts call

        def write(self, data: bytes) -> None: ...
        def abort(self, reason: str | None = None) -> None: ...
        def _close_soon(self) -> None: ...
        def _cleanup(self) -> None: ...
        def _pause(self, flag: int) -> None: ...
        def _resume(self, flag: int) -> None: ...
        def _arm_idle(self) -> None: ...
        def _reply_and_close(self, status: int, reason: str) -> None: ...
        def _blocked(self, head: RequestHead, host: str, port: int) -> None: ...
        async def _splice(self, host: str, port: int, rest: bytes) -> None: ...
        def _become_tunnel(self, conn: UpstreamConnection, rest: bytes) -> None: ...

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
