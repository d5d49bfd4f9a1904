"""``tlsgate ca``: create, show, renew, rotate, export, mint and verify the interception CA."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tlsgate.ca import (
    DEFAULT_CA_DAYS,
    DEFAULT_SUBJECT,
    CertificateAuthority,
    ExportFormat,
    KeyType,
    LeafIssuer,
    VersionStatus,
    describe_version,
    export_certificates,
    exported_versions,
    self_check,
)
from tlsgate.cli.context import app_context, print_json
from tlsgate.errors import CAError, ConfigError
from tlsgate.trust import artifacts

__all__ = ["app", "write_file"]

app = typer.Typer(
    help="The interception CA: create, renew in place, rotate, export, mint, verify.", no_args_is_help=True
)

_STATUS_STYLE = {
    VersionStatus.VALID: "green",
    VersionStatus.EXPIRING: "yellow",
    VersionStatus.EXPIRED: "red",
    VersionStatus.NOT_YET_VALID: "magenta",
}

KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key", help="Key type: ecdsa-p256 (default), ecdsa-p384, rsa-2048, rsa-3072, rsa-4096.", show_default=False
    ),
]
DaysOption = Annotated[int, typer.Option("--days", help="Validity of the new certificate, in days.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


_ctx = app_context


def _load(ctx: typer.Context) -> CertificateAuthority:
    return CertificateAuthority.load(_ctx(ctx).ca_dir)


@app.command()
def init(
    ctx: typer.Context,
    key: KeyOption = None,
    subject: Annotated[str, typer.Option("--subject", help="Subject DN of the root (RFC 4514).")] = DEFAULT_SUBJECT,
    days: DaysOption = DEFAULT_CA_DAYS,
    intermediate: Annotated[
        bool, typer.Option("--intermediate", help="Also create an issuing CA, so the root key can stay offline.")
    ] = False,
    passphrase_env: Annotated[
        str | None,
        typer.Option("--passphrase-env", help="Encrypt the CA keys with the passphrase in this environment variable."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create the interception root CA (refuses to overwrite an existing one)."""
    key_type = KeyType.parse(key) if key else KeyType.ECDSA_P256
    ca = CertificateAuthority.init(
        _ctx(ctx).ca_dir,
        key_type=key_type,
        subject=subject,
        days=days,
        intermediate=intermediate,
        passphrase_env=passphrase_env,
    )
    if as_json:
        print_json(_describe(ca))
        return
    _ctx(ctx).out.print(f"Created the interception CA in [bold]{ca.path}[/]")
    _print_versions(ctx, ca)
    _ctx(ctx).out.print("Endpoints must trust the root: [bold]tlsgate ca export --format pem -o tlsgate-root.pem[/]")


@app.command()
def show(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every version of every CA identity, its fingerprints and status."""
    ca = _load(ctx)
    if as_json:
        print_json(_describe(ca))
        return
    _print_versions(ctx, ca)


@app.command()
def renew(ctx: typer.Context, days: DaysOption = DEFAULT_CA_DAYS, as_json: JsonOption = False) -> None:
    """Renew in place: a new version with the same key and subject; earlier versions are kept."""
    ca = _load(ctx)
    new = ca.renew(days)
    if as_json:
        print_json(_describe(ca))
        return
    for version in new:
        _ctx(ctx).out.print(
            f"Renewed the {version.role} in place: version {version.number}, valid until {version.not_after:%Y-%m-%d} "
            f"(same key, SPKI SHA-256 {version.spki_sha256[:16]}…)"
        )
    _print_versions(ctx, ca)


@app.command()
def rotate(
    ctx: typer.Context,
    key: KeyOption = None,
    subject: Annotated[
        str | None,
        typer.Option("--subject", help="Subject of the new root (default: the current one's, next generation)."),
    ] = None,
    days: DaysOption = DEFAULT_CA_DAYS,
    as_json: JsonOption = False,
) -> None:
    """A new root identity with a new key, cross-signed by the current root."""
    ca = _load(ctx)
    old = ca.root
    new = ca.rotate(KeyType.parse(key) if key else None, subject, days)
    if as_json:
        print_json(_describe(ca))
        return
    _ctx(ctx).out.print(
        f"Rotated to a new root [bold]{new.current.subject}[/] ({new.current.key_type}), cross-signed by "
        f"{old.current.subject}; leaves are now issued under the new key."
    )
    _print_versions(ctx, ca)


@app.command()
def export(
    ctx: typer.Context,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="pem, der, p7b; or an installer for endpoints without the agent: "
            "ps1 (Windows), macos.sh, mobileconfig (Apple), firefox-policies.json.",
        ),
    ] = "pem",
    all_versions: Annotated[
        bool, typer.Option("--all-versions", help="Every root version that has not expired.")
    ] = False,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write (default: stdout).")] = None,
) -> None:
    """The public root certificate(s) for endpoints. Never a private key."""
    ca = _load(ctx)
    versions = exported_versions(ca, ca.clock(), all_versions=all_versions)
    certs = tuple(v.cert for v in versions)
    kind = fmt.strip().lower()
    if kind in artifacts.INSTALLERS:
        data = artifacts.INSTALLERS[kind](certs)
    else:
        try:
            data = export_certificates(certs, ExportFormat(kind))
        except ValueError:
            choices = ", ".join([*(f.value for f in ExportFormat), *artifacts.INSTALLERS])
            raise ConfigError(f"unknown export format {fmt!r} (choose one of: {choices})") from None
    if output is None:
        if kind in ("der", "p7b") and sys.stdout.isatty():
            raise ConfigError(f"{kind} is binary; write it to a file with -o")
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    write_file(output, data, private=False)
    _ctx(ctx).err.print(f"Wrote {len(versions)} certificate(s) ({kind}) to {output}")


@app.command()
def mint(
    ctx: typer.Context,
    hosts: Annotated[
        list[str], typer.Argument(help="DNS names and IP literals for the leaf's SANs.", show_default=False)
    ],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Leaf certificate chain (PEM); default stdout.")
    ] = None,
    key_out: Annotated[
        Path | None, typer.Option("--key-out", help="Write the leaf's private key here (mode 0600).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """A leaf certificate exactly as the proxy mints it."""
    ca = _load(ctx)
    leaf = LeafIssuer(ca.issuing_material(), clock=ca.clock).get(hosts)
    if key_out is not None:
        write_file(key_out, leaf.key_pem(), private=True)
    if output is not None:
        write_file(output, leaf.chain_pem, private=False)
    elif not as_json:
        sys.stdout.buffer.write(leaf.chain_pem)
        sys.stdout.flush()
    hosts_text = [str(h) for h in leaf.hosts]
    info = {
        "hosts": hosts_text,
        "serial": format(leaf.cert.serial_number, "x"),
        "not_before": leaf.cert.not_valid_before_utc.isoformat(),
        "not_after": leaf.cert.not_valid_after_utc.isoformat(),
        "issuer": leaf.cert.issuer.rfc4514_string(),
        "chain_length": 1 + len(leaf.chain),
        "certificate_file": str(output) if output else None,
        "key_file": str(key_out) if key_out else None,
    }
    if as_json:
        print_json(info)
    elif output is not None:
        _ctx(ctx).err.print(
            f"Minted a leaf for {', '.join(hosts_text)} valid until {leaf.cert.not_valid_after_utc:%Y-%m-%d}; "
            f"wrote {output}" + (f" and its key to {key_out}" if key_out else "")
        )


@app.command()
def verify(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Self-check: a fresh leaf verifies under every valid version of the CA; the files are well formed."""
    ca = _load(ctx)
    results = self_check(ca)
    failed = [r for r in results if not r.ok]
    if as_json:
        print_json({"ok": not failed, "checks": [{"name": r.name, "ok": r.ok, "detail": r.detail} for r in results]})
    else:
        table = Table(title="CA self-check")
        table.add_column("check")
        table.add_column("result")
        table.add_column("detail")
        for r in results:
            table.add_row(r.name, "[green]ok[/]" if r.ok else "[red]FAILED[/]", r.detail)
        _ctx(ctx).out.print(table)
    if failed:
        raise CAError(f"CA self-check failed: {failed[0].name}: {failed[0].detail}")


def _describe(ca: CertificateAuthority) -> dict[str, object]:
    now = ca.clock()
    return {
        "ca_dir": str(ca.path),
        "current_root": ca.root.id,
        "issuer": ca.issuer.id,
        "versions": [describe_version(v, now, current=ca.is_current(v)) for i in ca.identities for v in i.versions],
    }


def _print_versions(ctx: typer.Context, ca: CertificateAuthority) -> None:
    now = ca.clock()
    out = _ctx(ctx).out
    for identity in ca.identities:
        role = identity.role.value
        marker = " (current root)" if identity.id == ca.root.id else " (issuer)" if identity.id == ca.issuer.id else ""
        table = Table(title=f"{role}: {identity.current.subject}{marker}", title_justify="left")
        for column in ("v", "current", "serial", "not before", "not after", "days left", "status"):
            table.add_column(column, no_wrap=True)
        for v in identity.versions:
            status = v.status(now)
            table.add_row(
                str(v.number),
                "yes" if ca.is_current(v) else "",
                v.serial_hex[:16],
                f"{v.not_before:%Y-%m-%d}",
                f"{v.not_after:%Y-%m-%d}",
                str(v.days_left(now)),
                f"[{_STATUS_STYLE[status]}]{status.value}[/]",
            )
        out.print(table)
        out.print(f"  key {identity.current.key_type}, SPKI SHA-256 {identity.id}")
        for v in identity.versions:
            out.print(f"  v{v.number} SHA-256 {v.sha256}")
            out.print(f"  v{v.number} SHA-1   {v.sha1}")


def write_file(path: Path, data: bytes, *, private: bool) -> None:
    """Write an output file atomically; a private key gets mode 0600 from its first byte on disk."""
    path = path.expanduser()
    if path.is_dir():
        raise ConfigError(f"{path} is a directory")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
