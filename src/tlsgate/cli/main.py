"""The ``tlsgate`` command's root: global options, sub-command groups, and error handling.

Any :class:`TlsgateError` (and any usage error) becomes one line on stderr and
a non-zero exit: 1 for a refused operation, 2 for bad usage. Never a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from tlsgate import __version__
from tlsgate.cli import agent as agent_commands
from tlsgate.cli import ca as ca_commands
from tlsgate.cli import notify as notify_commands
from tlsgate.cli import portal as portal_commands
from tlsgate.cli import proxy as proxy_commands
from tlsgate.cli import serve as serve_commands
from tlsgate.cli.context import AppContext
from tlsgate.errors import TlsgateError

__all__ = ["app", "default_data_dir", "main"]

app = typer.Typer(
    name="tlsgate",
    help="tlsgate: a secure web gateway built around TLS interception and its root CA.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(ca_commands.app, name="ca")
app.add_typer(agent_commands.app, name="agent")
app.command("portal")(portal_commands.portal)
app.command("proxy")(proxy_commands.proxy)
app.command("serve")(serve_commands.serve)
app.add_typer(portal_commands.admin_app, name="admin")
app.add_typer(notify_commands.app, name="notify")


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/tlsgate``, or ``~/.local/share/tlsgate``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tlsgate"


def _version(value: bool) -> None:
    if value:
        from tlsgate import compiled  # imports the proxy's modules: only when asked

        typer.echo(f"tlsgate {__version__} (proxy core: {compiled.build()})")
        raise typer.Exit


@app.callback()
def root(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", envvar="TLSGATE_DATA_DIR", help="Where tlsgate keeps its CA and data.", show_default=False
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    ctx.obj = AppContext(data_dir=(data_dir or default_data_dir()).expanduser())


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    try:
        app(args=argv, prog_name="tlsgate")  # usage errors: Typer prints them and exits 2
    except TlsgateError as exc:
        _fail(str(exc), 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)


def _fail(message: str, code: int) -> None:
    first_line = " ".join(message.split())
    print(f"tlsgate: error: {first_line}", file=sys.stderr)
    sys.exit(code)
