"""A WebSocket echo through the intercepting proxy: Upgrade carried through after 101."""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from badssl import BadSSL, make_leaf, server_context
from proxy_fixtures import ProxyThread, badssl, issuer, proxy, tlsgate_ca
from websockets.sync.client import connect
from websockets.sync.server import Server, ServerConnection, serve

pytestmark = pytest.mark.integration
__all__ = ["badssl", "issuer", "proxy", "tlsgate_ca"]


def echo(websocket: ServerConnection) -> None:
    for message in websocket:
        websocket.send(message)


@pytest.fixture
def ws_origin(badssl: BadSSL) -> Iterator[Server]:
    leaf = make_leaf(["ws.test"], badssl.intermediate)
    context = server_context([leaf.cert, badssl.intermediate.cert], leaf.key)
    with serve(echo, "127.0.0.1", 0, ssl=context) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server
        server.shutdown()
        thread.join(5)


def test_websocket_echo_through_interception(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], ws_origin: Server
) -> None:
    port = ws_origin.socket.getsockname()[1]
    context = ssl.create_default_context(cafile=str(tlsgate_ca[1]))
    with connect(f"wss://ws.test:{port}/chat", proxy=proxy.url, ssl=context, open_timeout=10) as ws:
        for text in ("hello", "x" * 100_000, "bye"):
            ws.send(text)
            assert ws.recv(timeout=10) == text
        noise = os.urandom(200_000)  # incompressible, so the frames really carry it
        ws.send(noise)
        assert ws.recv(timeout=10) == noise
    event = proxy.wait_for_event(lambda e: e.status == 101 and e.host == "ws.test")
    assert event.bytes_out > 100_000
    assert event.bytes_in > 100_000
