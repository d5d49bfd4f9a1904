"""``tlsgate agent``: keep this endpoint's trust stores holding the interception CA."""

from __future__ import annotations

import platform
import random
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from cryptography import x509
from rich.table import Table

from tlsgate import __version__
from tlsgate.agent import Agent, EndpointStatus, StoreChange, accept_ca_set
from tlsgate.agent.state import AgentFiles, AgentState
from tlsgate.cli.context import app_context, print_json
from tlsgate.clock import system_clock
from tlsgate.errors import ConfigError, TlsgateError, TrustStoreError
from tlsgate.trust import CAIdentityRef, DebianStore, RhelStore, TrustStore, discover_stores, parse_pem_bundle

if TYPE_CHECKING:  # the portal client (httpx) is imported only by the commands that talk to the portal
    from tlsgate.agent.portal import PortalClient
    from tlsgate.agent.service import SyncReport

__all__ = ["app"]

app = typer.Typer(
    help="The endpoint agent: install the interception CA where clients look for it.", no_args_is_help=True
)

RootOption = Annotated[Path, typer.Option("--root", help="Root of the file system whose stores to manage.")]
HomeOption = Annotated[
    list[Path] | None, typer.Option("--home", help="Home directories for per-user stores (default: yours).")
]
StoreOption = Annotated[
    list[str] | None, typer.Option("--store", help="Only these kinds of store: debian, rhel, nss, java.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")]


_ctx = app_context


def _files(ctx: typer.Context) -> AgentFiles:
    return AgentFiles(_ctx(ctx).data_dir / "agent")


def _stores(root: Path, homes: list[Path] | None, kinds: list[str] | None, *, for_install: bool) -> list[TrustStore]:
    stores = discover_stores(root, homes, create_user_nssdb=for_install)
    if kinds:
        unknown = set(kinds) - {"debian", "rhel", "nss", "java"}
        if unknown:
            raise ConfigError(f"unknown store kind {sorted(unknown)[0]!r} (choose debian, rhel, nss, java)")
        stores = [s for s in stores if s.kind in kinds]
        # A system store named explicitly is managed even where its directory does not exist yet.
        for kind, store_type in (("debian", DebianStore), ("rhel", RhelStore)):
            if kind in kinds and not any(s.kind == kind for s in stores):
                stores.insert(0, store_type(root))
    if not stores:
        raise TrustStoreError("no trust store found on this endpoint")
    return stores


def _read_certs(path: Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    certs = parse_pem_bundle(data)
    if not certs:
        try:
            certs = [x509.load_der_x509_certificate(data)]
        except ValueError:
            raise ConfigError(f"{path} holds no certificate (PEM or DER)") from None
    return certs


@app.command()
def install(
    ctx: typer.Context,
    cert: Annotated[Path, typer.Option("--cert", help="The root certificate(s) to install (PEM bundle or DER).")],
    root: RootOption = Path("/"),
    home: HomeOption = None,
    store: StoreOption = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Install a root without a portal (for GPO/MDM/scripts), and remove expired versions where safe."""
    offered = _read_certs(cert)
    files = _files(ctx)
    state = files.load()
    # Not enrolled: the file defines the identity; each certificate must still be a self-signed CA.
    trusted = state.identities if state is not None else tuple(dict.fromkeys(CAIdentityRef.of(c) for c in offered))
    acceptance = accept_ca_set(trusted, offered, [], system_clock())
    if acceptance.refused:
        raise TrustStoreError(acceptance.refused[0][1] + " — nothing was installed")
    agent = Agent(_stores(root, home, store, for_install=True), acceptance.identities)
    changes = agent.apply(acceptance.versions, dry_run=dry_run)
    _report_changes(ctx, changes, dry_run=dry_run, as_json=as_json, status=agent.status())


@app.command()
def status(
    ctx: typer.Context,
    cert: Annotated[Path | None, typer.Option("--cert", help="Look for this CA (default: the enrolled one).")] = None,
    root: RootOption = Path("/"),
    home: HomeOption = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Per store, which versions of the CA are present, and one verdict. Exit 1 only when no store holds a valid one."""
    identities = _identities(ctx, cert)
    result = Agent(_stores(root, home, store, for_install=False), identities).status()
    if as_json:
        print_json(result.to_json())
    else:
        _print_status(ctx, result)
    if not result.ok:
        raise typer.Exit(1)


def _identities(ctx: typer.Context, cert: Path | None) -> tuple[CAIdentityRef, ...]:
    if cert is not None:
        return tuple(dict.fromkeys(CAIdentityRef.of(c) for c in _read_certs(cert)))
    state = _files(ctx).load()
    if state is None:
        raise ConfigError("not enrolled: run 'tlsgate agent enroll' or give --cert FILE")
    return state.identities


def _print_status(ctx: typer.Context, result: EndpointStatus) -> None:
    table = Table(title="Interception CA in this endpoint's trust stores")
    for column in ("store", "presence", "versions (serial, not after)"):
        table.add_column(column)
    for s in result.stores:
        style = {"valid": "green", "expired-only": "red", "absent": "yellow"}[s.presence.value]
        versions = "\n".join(f"{c.serial_number:x}"[:16] + f"  {c.not_valid_after_utc:%Y-%m-%d}" for c in s.versions)
        table.add_row(s.store, f"[{style}]{s.presence.value}[/]" + (f"\n{s.error}" if s.error else ""), versions or "-")
    out = _ctx(ctx).out
    out.print(table)
    until = result.trusted_until
    out.print(("[green]" if result.ok else "[red]") + result.verdict + "[/]")
    if until is not None and result.ok:
        out.print(f"Trusted until {until:%Y-%m-%d %H:%M} UTC (the latest valid version installed).")


def _change_json(change: StoreChange) -> dict[str, object]:
    return {
        "store": change.store,
        "install": [format(x.serial_number, "x") for x in change.plan.install],
        "remove": [format(x.serial_number, "x") for x in change.plan.remove],
        "kept_expired": [format(x.serial_number, "x") for x in change.plan.kept_expired],
        "error": change.error,
    }


def _report_changes(
    ctx: typer.Context, changes: list[StoreChange], *, dry_run: bool, as_json: bool, status: EndpointStatus
) -> None:
    failed = [c for c in changes if c.error]
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                "changes": [_change_json(c) for c in changes],
                "status": status.to_json(),
            }
        )
    else:
        verb = "would" if dry_run else ""
        out = _ctx(ctx).out
        for c in changes:
            if c.error:
                out.print(f"[red]{c.store}: {c.error}[/]")
                continue
            parts = [
                f"{verb} install {len(c.plan.install)}".strip(),
                f"{verb} remove {len(c.plan.remove)} expired".strip(),
            ]
            if c.plan.kept_expired:
                parts.append(f"kept {len(c.plan.kept_expired)} expired (no valid version to replace it)")
            out.print(
                f"{c.store}: " + ", ".join(parts) if c.plan.changes or c.plan.kept_expired else f"{c.store}: up to date"
            )
        if not dry_run:
            _print_status(ctx, status)
    if failed:
        raise TrustStoreError(f"{len(failed)} store(s) failed: {failed[0].store}: {failed[0].error}")


def _client(url: str, portal_ca: Path | None) -> PortalClient:
    from tlsgate.agent.portal import PortalClient

    return PortalClient(url, portal_ca=portal_ca)


def _enrolled(ctx: typer.Context) -> AgentState:
    state = _files(ctx).load()
    if state is None or state.portal_url is None:
        raise ConfigError("not enrolled: run 'tlsgate agent enroll --portal URL --token TOKEN' first")
    return state


@app.command()
def enroll(
    ctx: typer.Context,
    portal: Annotated[str, typer.Option("--portal", help="The portal's base URL (https://…).")],
    token: Annotated[str, typer.Option("--token", envvar="TLSGATE_ENROLL_TOKEN", help="An enrollment token.")],
    portal_ca: Annotated[
        Path | None, typer.Option("--portal-ca", help="CA file that verifies the portal's certificate.")
    ] = None,
    expect_spki: Annotated[
        str | None, typer.Option("--expect-spki", help="Refuse unless the portal's CA key has this SPKI SHA-256.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Register this endpoint with the portal and remember the CA identity it serves."""
    if _files(ctx).load() is not None:
        raise ConfigError(f"already enrolled (state in {_files(ctx).directory}); remove it to enroll again")
    client = _client(portal, portal_ca)
    try:
        from tlsgate.agent import service

        state = service.enroll(
            _files(ctx),
            client,
            portal,
            token,
            hostname=socket.gethostname(),
            os_name=platform.platform(),
            agent_version=__version__,
            expect_spki=expect_spki,
            portal_ca=str(portal_ca.resolve()) if portal_ca else None,
        )
    finally:
        client.close()
    identity = state.identities[0]
    if as_json:
        print_json({"endpoint_id": state.endpoint_id, "ca_identity": identity.to_json()})
        return
    _ctx(ctx).out.print(
        f"Enrolled as endpoint {state.endpoint_id}; CA identity {identity.subject} "
        f"(SPKI SHA-256 {identity.spki_sha256[:16]}…). Run 'tlsgate agent sync' next."
    )


@app.command()
def sync(
    ctx: typer.Context,
    root: RootOption = Path("/"),
    home: HomeOption = None,
    store: StoreOption = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Fetch the CA set, install what is missing, remove expired versions safely, check in."""
    report = _sync_once(ctx, root, home, store, dry_run=dry_run)
    _print_sync(ctx, report, dry_run=dry_run, as_json=as_json)
    if report.failed_stores:
        first = report.failed_stores[0]
        raise TrustStoreError(f"{len(report.failed_stores)} store(s) failed: {first.store}: {first.error}")


@app.command()
def run(
    ctx: typer.Context,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between syncs (±10% jitter).")] = 3600.0,
    max_runs: Annotated[int | None, typer.Option("--max-runs", help="Stop after this many syncs.")] = None,
    root: RootOption = Path("/"),
    home: HomeOption = None,
    store: StoreOption = None,
) -> None:
    """Sync on an interval, surviving portal outages (last good CA set, retries with back-off)."""
    if interval <= 0:
        raise ConfigError("--interval must be positive")
    err = _ctx(ctx).err
    first_retry = min(30.0, interval)
    backoff = first_retry
    runs = 0
    while max_runs is None or runs < max_runs:
        runs += 1
        problem = None
        try:
            report = _sync_once(ctx, root, home, store, dry_run=False)
            err.print(f"sync {runs}: {report.status.verdict}")
            if report.portal_error:
                problem = f"portal unreachable, kept the last good CA set ({report.portal_error})"
        except TlsgateError as exc:
            problem = str(exc)
        if problem is None:
            delay, backoff = interval, first_retry
        else:
            delay, backoff = backoff, min(backoff * 2, interval)  # retry sooner, backing off up to the interval
            err.print(f"sync {runs}: {problem}; retrying in {delay:.0f} s")
        if max_runs is not None and runs >= max_runs:
            break
        time.sleep(delay * random.uniform(0.9, 1.1))  # noqa: S311 - jitter, not a secret


def _sync_once(
    ctx: typer.Context, root: Path, home: list[Path] | None, store: list[str] | None, *, dry_run: bool
) -> SyncReport:
    state = _enrolled(ctx)
    client = _client(state.portal_url or "", Path(state.portal_ca) if state.portal_ca else None)
    try:
        from tlsgate.agent import service

        return service.sync(
            _files(ctx),
            state,
            client,
            _stores(root, home, store, for_install=True),
            agent_version=__version__,
            os_name=platform.platform(),
            dry_run=dry_run,
        )
    finally:
        client.close()


def _print_sync(ctx: typer.Context, report: SyncReport, *, dry_run: bool, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                "changes": [_change_json(c) for c in report.changes],
                "refused": list(report.refused),
                "portal_error": report.portal_error,
                "readiness": report.readiness,
                "status": report.status.to_json(),
            }
        )
        return
    out = _ctx(ctx).out
    for line in report.refused:
        out.print(f"[red]{line}[/]")
    if report.portal_error:
        out.print(f"[yellow]portal unreachable, used the last good CA set: {report.portal_error}[/]")
    _report_changes(ctx, list(report.changes), dry_run=dry_run, as_json=False, status=report.status)
    if report.readiness:
        out.print(f"Portal verdict: {report.readiness['state']} ({report.readiness['reason']})")
