"""``tlsgate serve``: the whole gateway on one node — proxy, portal and notifier, one data directory."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from tlsgate.ca import CertificateAuthority, ExportFormat, export_certificates
from tlsgate.cli.ca import write_file
from tlsgate.cli.context import AppContext
from tlsgate.cli.portal import DEFAULT_PORTAL_LISTEN, DatabaseOption
from tlsgate.errors import ConfigError
from tlsgate.proxy.config import DEFAULT_WORKERS, parse_listen
from tlsgate.supervisor import Child, Supervisor

__all__ = ["serve"]


def serve(
    ctx: typer.Context,
    proxy_listen: Annotated[str, typer.Option("--proxy-listen", help="HOST:PORT of the proxy.")] = "127.0.0.1:3128",
    portal_listen: Annotated[
        str, typer.Option("--portal-listen", help="HOST:PORT of the portal.")
    ] = DEFAULT_PORTAL_LISTEN,
    database_url: DatabaseOption = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Proxy worker processes.")] = DEFAULT_WORKERS,
    upstream_ca: Annotated[
        Path | None, typer.Option("--upstream-ca", exists=True, dir_okay=False, help="Extra upstream CA (PEM).")
    ] = None,
    access_log: Annotated[
        str | None, typer.Option("--access-log", help="Access events (JSON lines): FILE or -.")
    ] = None,
    notify_config: Annotated[
        Path | None,
        typer.Option(
            "--notify-config", exists=True, dir_okay=False, help="TOML with the [notify] recipients and plan."
        ),
    ] = None,
    notify_every: Annotated[float, typer.Option("--notify-every", help="Seconds between notifier passes.")] = 300.0,
    portal_tls: Annotated[
        bool,
        typer.Option("--portal-tls/--portal-plain-http", help="HTTPS for the portal (agents only talk HTTPS)."),
    ] = True,
) -> None:
    """Run the gateway: the intercepting proxy, the portal and the expiry notifier, until SIGTERM."""
    if notify_every <= 0:
        raise ConfigError("--notify-every must be positive")
    from tlsgate.portal.settings import parse_listen as parse_portal_listen
    from tlsgate.store import default_database_url, open_store

    app_ctx: AppContext = ctx.obj
    data_dir = app_ctx.data_dir
    parse_listen(proxy_listen)  # bad listen addresses are refused here, before anything starts
    parse_portal_listen(portal_listen)
    url = database_url or default_database_url(data_dir)
    out = app_ctx.out
    if not CertificateAuthority.exists(app_ctx.ca_dir):
        CertificateAuthority.init(app_ctx.ca_dir)
        out.print(f"Created the interception CA in {app_ctx.ca_dir}")
    ca = CertificateAuthority.load(app_ctx.ca_dir)
    root_file = data_dir / "tlsgate-root.pem"
    write_file(root_file, export_certificates((ca.root.current.cert,), ExportFormat.PEM), private=False)
    open_store(url).engine.dispose()  # migrate once, before the children share the database

    # -P: the children never import from the working directory. The database URL (it may carry a
    # password) goes to them in the environment, never on argv where ps shows it.
    base = (sys.executable, "-P", "-m", "tlsgate", "--data-dir", str(data_dir))
    proxy_argv = [*base, "proxy", "--listen", proxy_listen, "--workers", str(workers)]
    if upstream_ca is not None:
        proxy_argv += ["--upstream-ca", str(upstream_ca)]
    if access_log is not None:
        proxy_argv += ["--access-log", access_log]
    # The portal's sign-in modal opens when the plan's portal alert falls due (7 weeks by default).
    from tlsgate.notify import load_notify_settings

    alert_days = load_notify_settings(notify_config).portal_alert_days or 60
    notify_argv = [*base, "notify", "run", "--every", str(notify_every)]
    if notify_config is not None:
        notify_argv += ["--config", str(notify_config)]
    children = [
        Child("proxy", tuple(proxy_argv)),
        Child(
            "portal",
            (
                *base,
                "portal",
                "--listen",
                portal_listen,
                "--tls" if portal_tls else "--no-tls",
                "--alert-days",
                str(alert_days),
            ),
        ),
        Child("notifier", tuple(notify_argv)),
    ]

    host, port = parse_portal_listen(portal_listen)
    lines = [
        ("proxy", f"http://{proxy_listen}  (explicit proxy for HTTP and HTTPS)"),
        ("portal", f"{'https' if portal_tls else 'http'}://{host}:{port}/"),
        ("root CA to trust", f"{root_file}  (SHA-256 {ca.root.current.sha256})"),
        ("database", url.split("@")[-1]),  # never print a password from the URL
        ("try it", f"curl -x http://{proxy_listen} --cacert {root_file} https://example.com/"),
    ]
    out.print("[bold]tlsgate gateway[/]")
    for label, value in lines:  # one line each, never wrapped: people copy these
        out.print(f"  {label:<17} {value}", soft_wrap=True)
    sys.stdout.flush()
    code = Supervisor(children, env={**os.environ, "TLSGATE_DATABASE_URL": url}).run()
    raise typer.Exit(code)
