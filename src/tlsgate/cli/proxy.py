"""``tlsgate proxy``: run the intercepting explicit proxy (logic lives in ``tlsgate.proxy``)."""

from __future__ import annotations

import os
import sys
import tempfile
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
    # Become the lean worker process (same pid, so signals and supervisors are unaffected). The
    # settings go through an inherited anonymous file: argv is world-readable in ps (a database
    # URL may carry a password) and one environment string is limited to 128 KiB.
    fd = _settings_file(settings.to_json().encode())
    sys.stdout.flush()
    sys.stderr.flush()
    # -P: never import from the working directory (python -m would put it first on sys.path).
    argv = [sys.executable, "-P", "-m", "tlsgate.proxy", "--settings-fd", str(fd), f"{settings.host}:{settings.port}"]
    os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter, fixed arguments


def _settings_file(payload: bytes) -> int:
    """An inheritable descriptor of an anonymous file holding ``payload``, rewound."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("tlsgate-proxy-settings", 0)
    else:  # pragma: no cover - Linux has memfd
        with tempfile.TemporaryFile() as handle:  # no name on disk; the dup outlives the handle
            fd = os.dup(handle.fileno())
    os.write(fd, payload)
    os.lseek(fd, 0, os.SEEK_SET)
    os.set_inheritable(fd, True)
    return fd
