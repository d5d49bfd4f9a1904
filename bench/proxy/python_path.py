"""The proxy's own Python per request, without sockets or TLS (not a test; run it by hand).

    .venv/bin/python bench/proxy/python_path.py [--requests 50000] [--repeat 5]

Drives one intercepted client connection and one pooled origin connection of a real
``ProxyServer`` through transports that only record what is written: a keep-alive GET as
``hey`` sends it goes in, the origin's 1 KiB answer as nginx sends it comes back. What is
timed is what tlsgate's code adds per request on top of TLS and the event loop: HTTP parsing,
the head rewrites, the exchange, the pool. The best of ``--repeat`` runs is printed, in µs.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from tlsgate.policy import Policy
from tlsgate.proxy.config import ProxySettings
from tlsgate.proxy.listener import ProxyServer
from tlsgate.proxy.server import _INTERCEPT, ClientConnection
from tlsgate.proxy.upstream import UpstreamConnection

REQUEST = (
    b"GET /1k HTTP/1.1\r\nHost: h1.bench.test\r\nUser-Agent: hey/0.0.1\r\n"
    b"Content-Type: text/html\r\nAccept-Encoding: gzip\r\n\r\n"
)
BODY = b"x" * 1024
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 26 Nov 2026 23:00:00 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 1024\r\n"
    b"Last-Modified: Thu, 26 Nov 2026 22:00:00 GMT\r\nConnection: keep-alive\r\n"
    b'ETag: "6a1b2c3d-400"\r\nAccept-Ranges: bytes\r\n\r\n' + BODY
)


class Recorder(asyncio.Transport):
    """A transport that keeps the last write."""

    def __init__(self) -> None:
        super().__init__()
        self.last = b""
        self.closing = False

    def write(self, data: Any) -> None:
        self.last = bytes(data)

    def writelines(self, pieces: Any) -> None:
        self.last = b"".join(pieces)

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closing = True


def run(requests: int) -> float:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        server = ProxyServer(ProxySettings(port=0), issuer=None, policy=Policy())
        client = ClientConnection(server)
        client.connection_made(Recorder())
        client.mode = _INTERCEPT  # as after the TLS handshake of "CONNECT h1.bench.test:443"
        client.scheme, client.connect_host, client.connect_port = "https", "h1.bench.test", 443
        origin = ("https", "h1.bench.test", 443)
        upstream = UpstreamConnection(origin, server.limits)
        up_transport = Recorder()
        upstream.connection_made(up_transport)
        server.pool.release(upstream, loop.time())
        client_transport = client.transport
        started = time.perf_counter()
        for _ in range(requests):
            client.data_received(REQUEST)
            upstream.data_received(RESPONSE)
        elapsed = time.perf_counter() - started
        if not client_transport.last.endswith(BODY) or not up_transport.last.startswith(b"GET /1k "):
            raise SystemExit("the proxy did not pass the request and response through")
        return elapsed / requests * 1e6
    finally:
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    best = min(run(args.requests) for _ in range(args.repeat))
    print(f"tlsgate Python per keep-alive request (parse, rewrite, exchange, pool): {best:.2f} µs")


if __name__ == "__main__":
    main()
