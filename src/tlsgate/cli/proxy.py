"""``tlsgate proxy``: run the intercepting explicit proxy (logic lives in ``tlsgate.proxy``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from tlsgate.cli.context import AppContext
from tlsgate.proxy.config import load_settings

__all__ = ["proxy"]


def proxy(
    ctx: typer.Context,
    listen: Annotated[
        str | None, typer.Option("--listen", help="HOST:PORT to listen on [default: 127.0.0.1:3128].")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Worker processes sharing the port [default: 1].")
    ] = None,
    upstream_ca: Annotated[
        Path | None,
        typer.Option(
            "--upstream-ca", exists=True, dir_okay=False, help="Extra CA certificates (PEM) to trust upstream."
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", exists=True, dir_okay=False, help="TOML settings file.")
    ] = None,
    bypass: Annotated[
        list[str] | None, typer.Option("--bypass", help="Host glob to tunnel unintercepted (repeatable).")
    ] = None,
    access_log: Annotated[
        str | None, typer.Option("--access-log", help="Write access events as JSON lines to FILE, or - for stdout.")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="TLSGATE_DATABASE_URL",
            help="Follow the portal's do-not-inspect list in this database (polled, no restart needed).",
        ),
    ] = None,
) -> None:
    """Run the intercepting HTTP/HTTPS proxy until SIGTERM (which drains in-flight requests)."""
    app_ctx: AppContext = ctx.obj
    settings = load_settings(
        config,
        listen=listen,
        workers=workers,
        upstream_ca=upstream_ca,
        bypass=tuple(bypass or ()),
        access_log=access_log,
        database_url=database_url,
        ca_dir=app_ctx.ca_dir,
    )
    # Become the lean worker process (same pid, so signals and supervisors are unaffected).
    os.environ["TLSGATE_PROXY_SETTINGS"] = settings.to_json()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "tlsgate.proxy", f"{settings.host}:{settings.port}"])  # noqa: S606
