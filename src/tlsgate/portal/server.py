"""The portal as a uvicorn server object, so ``tlsgate portal`` and ``tlsgate serve`` (beside the proxy,
in the same event loop: ``await server.serve()``) run it the same way."""

from __future__ import annotations

import uvicorn

from tlsgate.portal.app import create_app
from tlsgate.portal.settings import PortalSettings
from tlsgate.store import Store

__all__ = ["build_portal_server"]


def build_portal_server(
    settings: PortalSettings, *, store: Store | None = None, log_level: str = "info"
) -> uvicorn.Server:
    """Migrate the store, create the first admin (printing its one-time password), and return a ready server."""
    app = create_app(settings, store=store)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        proxy_headers=False,
        server_header=False,
        lifespan="off",
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
    )
    return uvicorn.Server(config)
