"""Accepting: a burst of clients is taken in a few loop iterations, not one client per iteration.

uvloop's own servers (libuv 1.5x) accept one connection per loop iteration; under load a burst of
clients then waited for thousands of iterations, behind clients that had already given up."""

from __future__ import annotations

import socket
import time

import pytest
from badssl import BadSSL
from proxy_fixtures import ProxyThread, badssl, issuer, tlsgate_ca

from tlsgate.policy import Policy
from tlsgate.proxy import ProxySettings

pytestmark = pytest.mark.integration
__all__ = ["badssl", "issuer", "tlsgate_ca"]

CLIENTS = 200


def test_a_burst_of_clients_is_accepted_in_a_few_loop_iterations(issuer: object, badssl: BadSSL) -> None:
    thread = ProxyThread(ProxySettings(host="127.0.0.1", port=0), issuer, Policy())  # type: ignore[arg-type]
    clients: list[socket.socket] = []
    try:
        loop, server = thread.loop, thread.server
        assert loop is not None and server is not None
        iterations = [0]

        def tick() -> None:  # once per loop iteration: call_soon from a callback runs in the next one
            iterations[0] += 1
            if len(server.connections) < CLIENTS and iterations[0] < 100_000:
                loop.call_soon(tick)

        loop.call_soon_threadsafe(time.sleep, 0.5)  # the worker is busy while the burst arrives
        for _ in range(CLIENTS):
            client = socket.create_connection(("127.0.0.1", thread.port), timeout=10)
            client.sendall(f"CONNECT good.test:{badssl.ports['good']} HTTP/1.1\r\nHost: good.test\r\n\r\n".encode())
            clients.append(client)
        loop.call_soon_threadsafe(tick)
        deadline = time.monotonic() + 10
        while len(server.connections) < CLIENTS and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(server.connections) == CLIENTS
        taken_within = iterations[0]
        assert taken_within < 20, f"{CLIENTS} queued clients took {taken_within} loop iterations to accept"
        for client in clients:  # and every one of them is served
            assert client.recv(4096).startswith(b"HTTP/1.1 200 Connection established")
    finally:
        for client in clients:
            client.close()
        thread.stop()
