"""Fixtures for the proxy's integration tests: a CA made with the tlsgate CLI, the local badssl
suite, and a proxy running in a thread on 127.0.0.1. Test modules import what they use."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvloop
from badssl import BadSSL

from tlsgate.ca import CertificateAuthority, LeafIssuer
from tlsgate.policy import Policy
from tlsgate.proxy import AccessEvent, ProxyServer, ProxySettings

TLSGATE = str(Path(sys.executable).with_name("tlsgate"))


def resolve_test_names(host: str, port: int) -> tuple[str, int]:
    """``*.test`` (and everything else in these tests) lives on 127.0.0.1."""
    return "127.0.0.1", port


class ProxyThread:
    """A ProxyServer on its own uvloop in a thread; ``events`` collects access events."""

    def __init__(
        self,
        settings: ProxySettings,
        issuer: LeafIssuer,
        policy: Policy,
        resolve: Callable[[str, int], tuple[str, int]] = resolve_test_names,
    ) -> None:
        self.events: list[AccessEvent] = []
        self._resolve = resolve
        self.settings = settings
        self._issuer = issuer
        self._policy = policy
        self._ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.server: ProxyServer | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self.server = ProxyServer(
                self.settings, self._issuer, self._policy, sink=self.events.append, resolve=self._resolve
            )
            await self.server.start()
            self.port = self.server.port
            self._ready.set()
            await self._stop.wait()
            await self.server.drain(timeout=2.0)

        uvloop.run(main())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for_event(self, predicate: object, timeout: float = 5.0) -> AccessEvent:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in list(self.events):
                if predicate(event):  # type: ignore[operator]
                    return event
            time.sleep(0.02)
        raise AssertionError(f"no matching access event in {self.events!r}")

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def make_ca(directory: Path) -> tuple[Path, Path]:
    """``tlsgate ca init`` and ``ca export --format pem``: the CA dir and the exported root."""
    env = {**os.environ, "TLSGATE_DATA_DIR": str(directory)}
    subprocess.run([TLSGATE, "ca", "init"], check=True, env=env, capture_output=True)
    root = directory / "root.pem"
    subprocess.run(
        [TLSGATE, "ca", "export", "--format", "pem", "-o", str(root)], check=True, env=env, capture_output=True
    )
    return directory / "ca", root


@pytest.fixture(scope="session")
def tlsgate_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_ca(tmp_path_factory.mktemp("tlsgate-data"))


@pytest.fixture(scope="session")
def issuer(tlsgate_ca: tuple[Path, Path]) -> LeafIssuer:
    ca = CertificateAuthority.load(tlsgate_ca[0])
    return LeafIssuer(ca.issuing_material(), clock=ca.clock)


@pytest.fixture(scope="session")
def badssl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BadSSL]:
    suite = BadSSL(tmp_path_factory.mktemp("badssl"))
    yield suite
    suite.close()


@pytest.fixture(scope="module")
def proxy(issuer: LeafIssuer, badssl: BadSSL) -> Iterator[ProxyThread]:
    settings = ProxySettings(host="127.0.0.1", port=0, upstream_ca=badssl.root_file, bypass=("bypassed.test",))
    thread = ProxyThread(settings, issuer, Policy(bypass=settings.bypass, block=("blocked.test",)))
    yield thread
    thread.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chromium(home: Path, proxy: ProxyThread, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--proxy-server=http://127.0.0.1:{proxy.port}",
            "--host-resolver-rules=MAP *.test 127.0.0.1",
            f"--user-data-dir={home / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ],
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        check=False,
        timeout=90,
    )


def open_tunnel(proxy: ProxyThread, host: str, port: int) -> socket.socket:
    """A client socket through ``proxy`` once ``CONNECT host:port`` was answered 200."""
    raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    raw.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    assert raw.recv(4096).startswith(b"HTTP/1.1 200")
    return raw
