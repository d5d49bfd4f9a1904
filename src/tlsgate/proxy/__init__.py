"""tlsgate.proxy: the explicit HTTP/HTTPS proxy — listener, CONNECT, TLS interception, upstream
pool, streaming, limits, access events.

It never decides policy (``tlsgate.policy``) and never builds certificates (``tlsgate.ca``).
Embed it with ``ProxyServer(settings, issuer, policy)``; run it as a command with
``run_proxy(settings)``.
"""

from tlsgate.proxy.access import AccessEvent, JsonLinesSink, open_sink
from tlsgate.proxy.config import DEFAULT_WORKERS, ProxySettings, load_settings, parse_listen
from tlsgate.proxy.listener import ProxyServer
from tlsgate.proxy.upstream import upstream_context
from tlsgate.proxy.workers import run_proxy

__all__ = [
    "DEFAULT_WORKERS",
    "AccessEvent",
    "JsonLinesSink",
    "ProxyServer",
    "ProxySettings",
    "load_settings",
    "open_sink",
    "parse_listen",
    "run_proxy",
    "upstream_context",
]
