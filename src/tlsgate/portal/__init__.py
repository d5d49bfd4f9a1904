"""tlsgate.portal: the admin web UI and the JSON API (OpenAPI) — sign-in, downloads, fleet, alerts, status page.

Never mints leaf certificates and never serves a private key.
"""

from tlsgate.portal.app import bootstrap, create_app
from tlsgate.portal.server import build_portal_server
from tlsgate.portal.settings import DEFAULT_LISTEN, PortalSettings, parse_listen

__all__ = ["DEFAULT_LISTEN", "PortalSettings", "bootstrap", "build_portal_server", "create_app", "parse_listen"]
