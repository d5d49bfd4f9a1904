"""Byte-for-byte tunnels of a client connection: a bypassed host, and a WebSocket after ``101``.

A part of :class:`~tlsgate.proxy.server.ClientConnection` (see ``state.py``). A bypassed host is
spliced unintercepted (the client sees the origin's own certificate); a tunnel is logged as one
access event with the bytes each way when it ends.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from tlsgate.proxy.events import Event
from tlsgate.proxy.headers import simple_response
from tlsgate.proxy.state import _P_PEER, _P_UPSTREAM, _TUNNEL, ConnectionState
from tlsgate.proxy.upstream import UpstreamConnection

if TYPE_CHECKING:
    from tlsgate.proxy.exchange import Exchange

__all__ = ["Tunnels"]


class Tunnels(ConnectionState):
    """Splicing and upgrade tunnels: a part of ClientConnection."""

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
            self.write(simple_response(502, f"cannot reach {host}:{port}: {reason}"))
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
