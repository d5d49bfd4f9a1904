"""``tlsgate portal`` (the admin web UI and API on its own) and ``tlsgate admin create|reset-password``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tlsgate.cli.context import app_context
from tlsgate.clock import system_clock
from tlsgate.errors import ConfigError

# The portal and the store (FastAPI, SQLAlchemy, Alembic) are imported inside the commands that
# use them: every tlsgate process imports this module, and a proxy worker must stay small.

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["DEFAULT_PORTAL_LISTEN", "DatabaseOption", "admin_app", "portal", "portal_certificate"]

#: the same as ``tlsgate.portal.settings.DEFAULT_LISTEN`` (a test keeps them equal)
DEFAULT_PORTAL_LISTEN = "127.0.0.1:8180"

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="TLSGATE_DATABASE_URL",
        show_default=False,
        help="SQLAlchemy URL, e.g. postgresql://user@host/tlsgate (default: SQLite in the data directory).",
    ),
]
admin_app = typer.Typer(help="Portal admin accounts.", no_args_is_help=True)


_ctx = app_context


@contextlib.contextmanager
def _session(ctx: typer.Context, database_url: str | None) -> Iterator[Session]:
    """One unit of work on the store (migrated first), closed again when the command is done."""
    from tlsgate.store import open_store

    store = open_store(_url(ctx, database_url))
    try:
        with store.session() as session:
            yield session
    finally:
        store.dispose()


def _url(ctx: typer.Context, database_url: str | None) -> str:
    from tlsgate.store import default_database_url

    return database_url or default_database_url(_ctx(ctx).data_dir)


def portal(
    ctx: typer.Context,
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to listen on.")] = DEFAULT_PORTAL_LISTEN,
    database_url: DatabaseOption = None,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls/--no-tls",
            help="Serve HTTPS with a certificate from the interception CA (agents only talk HTTPS).",
        ),
    ] = False,
    tls_name: Annotated[
        list[str] | None, typer.Option("--tls-name", help="Extra host names for the portal's certificate.")
    ] = None,
    alert_days: Annotated[
        int,
        typer.Option("--alert-days", min=1, max=3650, help="Show the expiry modal this many days before expiry."),
    ] = 60,
) -> None:
    """Run the admin portal and JSON API (migrates the database; the first start prints the admin's password)."""
    from tlsgate.portal.server import build_portal_server
    from tlsgate.portal.settings import PortalSettings, parse_listen

    host, port = parse_listen(listen)
    cert = key = None
    if tls:
        cert, key = portal_certificate(_ctx(ctx).data_dir, [host, *(tls_name or [])])
    settings = PortalSettings(
        data_dir=_ctx(ctx).data_dir,
        database_url=database_url,
        host=host,
        port=port,
        tls_cert=cert,
        tls_key=key,
        secure_cookies=tls,
        expiry_alert_days=alert_days,
    )
    server = build_portal_server(settings)
    _ctx(ctx).err.print(f"Portal on {settings.base_url}/  ·  API {settings.base_url}/api/v1/docs")
    _ctx(ctx).err.print(f"Root certificate to trust: {settings.base_url}/api/v1/ca/certificates?format=pem")
    server.run()


def portal_certificate(data_dir: Path, names: list[str]) -> tuple[Path, Path]:
    """The portal's TLS certificate, minted by the interception CA at each start (so it never runs out).

    Endpoints that trust the interception root (or are enrolled with ``--portal-ca`` pointing at
    it) verify the portal with it. The key is written 0600 next to the certificate.
    """
    import socket

    from tlsgate.ca import CertificateAuthority, LeafIssuer, normalize_host
    from tlsgate.cli.ca import write_file

    wanted = [n for n in names if n not in ("0.0.0.0", "::")]  # noqa: S104 - filtered out, not bound
    if len(wanted) < len(names) or not wanted:
        wanted += ["localhost", "127.0.0.1", socket.gethostname()]
    ca = CertificateAuthority.load(data_dir / "ca")
    leaf = LeafIssuer(ca.issuing_material(), clock=ca.clock).mint(
        tuple(dict.fromkeys(normalize_host(n) for n in wanted))
    )
    directory = data_dir / "portal-tls"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    write_file(key, leaf.key_pem(), private=True)
    write_file(cert, leaf.chain_pem, private=False)
    return cert, key


def _password(from_env: str | None) -> tuple[str, bool]:
    """The password to set and whether it was generated (then it is one-time: must be changed at sign-in)."""
    from tlsgate.portal.security import check_new_password, generate_password

    if from_env is None:
        return generate_password(), True
    value = os.environ.get(from_env)
    if not value:
        raise ConfigError(f"${from_env} is empty or not set")
    problem = check_new_password(value)
    if problem:
        raise ConfigError(f"the password in ${from_env} is refused: {problem}")
    return value, False


PasswordEnv = Annotated[
    str | None,
    typer.Option("--password-env", help="Take the password from this environment variable instead of generating one."),
]


@admin_app.command("create")
def admin_create(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="User name of the new admin.")],
    database_url: DatabaseOption = None,
    password_env: PasswordEnv = None,
) -> None:
    """Create an admin account; prints a one-time password unless --password-env is given."""
    from sqlalchemy import select

    from tlsgate.portal.security import create_admin
    from tlsgate.store import AdminAccount, record_audit

    name = username.strip().casefold()
    if not name or len(name) > 64:
        raise ConfigError("the user name must be 1 to 64 characters")
    password, generated = _password(password_env)
    with _session(ctx, database_url) as session:
        if session.scalars(select(AdminAccount).where(AdminAccount.username == name)).first():
            raise ConfigError(f"an admin called {name!r} already exists (use tlsgate admin reset-password)")
        now = system_clock()
        create_admin(session, name, password, now, must_change=generated)
        record_audit(session, at=now, actor="cli", action="admin.create", target=name, source="cli")
    _report(ctx, name, password if generated else None, "Created")


@admin_app.command("reset-password")
def admin_reset_password(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="User name of the admin.")],
    database_url: DatabaseOption = None,
    password_env: PasswordEnv = None,
) -> None:
    """Set a new password (one-time unless --password-env), sign the admin out everywhere, lift any lock-out."""
    from sqlalchemy import select

    from tlsgate.portal.security import set_password
    from tlsgate.store import AdminAccount, record_audit

    name = username.strip().casefold()
    password, generated = _password(password_env)
    with _session(ctx, database_url) as session:
        admin = session.scalars(select(AdminAccount).where(AdminAccount.username == name)).first()
        if admin is None:
            raise ConfigError(f"there is no admin called {name!r}")
        now = system_clock()
        set_password(session, admin, password, now, must_change=generated)
        record_audit(session, at=now, actor="cli", action="admin.reset-password", target=name, source="cli")
    _report(ctx, name, password if generated else None, "Reset the password of")


def _report(ctx: typer.Context, name: str, password: str | None, verb: str) -> None:
    _ctx(ctx).err.print(f"{verb} the admin [bold]{name}[/].")
    if password is not None:
        typer.echo(f"One-time password: {password}")
        _ctx(ctx).err.print("It is shown only now; it must be changed at the first sign-in.")


token_app = typer.Typer(help="API and enrollment tokens (the secret is printed once).", no_args_is_help=True)
admin_app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="api (admin automation) or enrollment (for agents).")],
    name: Annotated[str, typer.Argument(help="What the token is for, e.g. 'laptops' or 'ci'.")],
    expires_days: Annotated[int | None, typer.Option("--expires-days", min=1, max=3650)] = None,
    max_uses: Annotated[int | None, typer.Option("--max-uses", min=1, help="Enrollment tokens only.")] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Issue a token; its secret is printed once on stdout (only its hash is stored)."""
    from datetime import timedelta

    from tlsgate.portal.tokens import issue_api_token, issue_enrollment_token
    from tlsgate.store import record_audit

    if kind not in ("api", "enrollment"):
        raise ConfigError(f"unknown token kind {kind!r} (choose api or enrollment)")
    if max_uses is not None and kind != "enrollment":
        raise ConfigError("--max-uses applies to enrollment tokens only")
    label = name.strip()
    if not label or len(label) > 128:
        raise ConfigError("the token name must be 1 to 128 characters")
    now = system_clock()
    expires_at = now + timedelta(days=expires_days) if expires_days else None
    with _session(ctx, database_url) as session:
        if kind == "api":
            secret, _ = issue_api_token(session, label, "cli", now, expires_at)
        else:
            secret, _ = issue_enrollment_token(session, label, "cli", now, expires_at, max_uses)
        record_audit(session, at=now, actor="cli", action=f"token.{kind}.create", target=label, source="cli")
    _ctx(ctx).err.print(f"Created the {kind} token [bold]{label}[/]; its secret is shown only now:")
    typer.echo(secret)
