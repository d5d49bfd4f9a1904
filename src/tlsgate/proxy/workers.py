"""Running the proxy as a command: N worker processes sharing the port, signals, draining.

``--workers 1`` (the default, chosen by measurement on a 2-core machine) serves in this
process. With N > 1 the parent forks N workers that each bind the port with SO_REUSEPORT, so
the kernel spreads connections; the parent forwards SIGTERM/SIGINT and waits. On SIGTERM a
worker stops accepting, lets in-flight exchanges finish (``drain_timeout``), and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

import uvloop

from tlsgate import compiled
from tlsgate.ca import CertificateAuthority, LeafIssuer
from tlsgate.errors import ConfigError
from tlsgate.policy import Policy
from tlsgate.proxy.access import JsonLinesSink, open_sink
from tlsgate.proxy.config import ProxySettings
from tlsgate.proxy.listener import ProxyServer
from tlsgate.proxy.refresh import LiveConfig
from tlsgate.proxy.upstream import upstream_context

__all__ = ["run_proxy"]


def run_proxy(settings: ProxySettings) -> None:
    """Serve until SIGTERM/SIGINT; blocking. Raises TlsgateError for unusable settings or CA."""
    if settings.ca_dir is None:
        raise ConfigError("the proxy needs a CA directory (tlsgate --data-dir D ca init)")
    ca = CertificateAuthority.load(settings.ca_dir)
    material = ca.issuing_material()
    policy = Policy(bypass=settings.bypass, block=settings.block)
    upstream_context(settings.upstream_ca)  # fail early on a bad --upstream-ca, before forking
    if settings.workers == 1:
        _serve(settings, LeafIssuer(material, clock=ca.clock), policy, reuse_port=False)
        return
    children: list[int] = []
    for _ in range(settings.workers):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 0
            try:
                _serve(settings, LeafIssuer(material, clock=ca.clock), policy, reuse_port=True)
            except BaseException:
                code = 1
            os._exit(code)
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    print(f"tlsgate proxy: {settings.workers} workers on {settings.host}:{settings.port}", file=sys.stderr, flush=True)
    for child in children:
        while True:
            try:
                os.waitpid(child, 0)
                break
            except ChildProcessError:
                break
            except InterruptedError:  # pragma: no cover
                continue


def _live_config(settings: ProxySettings, server: ProxyServer) -> LiveConfig | None:
    if settings.ca_dir is None:
        return None
    stored = None
    if settings.database_url:
        # Imported only when a database is configured: SQLAlchemy costs a proxy worker ~25 MiB.
        from tlsgate.store import load_do_not_inspect_hosts, open_store

        store = open_store(settings.database_url, run_migrations=False)  # the portal owns migrations

        def stored() -> tuple[str, ...]:
            return load_do_not_inspect_hosts(store)

    return LiveConfig(
        server,
        ca_dir=settings.ca_dir,
        bypass=settings.bypass,
        block=settings.block,
        stored_bypass=stored,
        interval=settings.refresh_interval,
    )


def _serve(settings: ProxySettings, issuer: LeafIssuer, policy: Policy, *, reuse_port: bool) -> None:
    sink: JsonLinesSink | None = open_sink(settings.access_log) if settings.access_log else None

    async def main() -> None:
        server = ProxyServer(settings, issuer, policy, sink=sink, reuse_port=reuse_port)
        await server.start()
        live = _live_config(settings, server)
        refresher = asyncio.get_running_loop().create_task(live.run()) if live else None
        if not reuse_port:
            print(
                f"tlsgate proxy: listening on {settings.host}:{server.port} (proxy core: {compiled.build()})",
                file=sys.stderr,
                flush=True,
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        if refresher is not None:
            refresher.cancel()
        await server.drain()

    try:
        uvloop.run(main())
    finally:
        if sink is not None:
            sink.close()
