"""``tlsgate notify``: the expiry communications plan — show it, run one pass, or keep running."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tlsgate import __version__
from tlsgate.cli.context import AppContext, print_json
from tlsgate.cli.portal import DatabaseOption
from tlsgate.errors import ConfigError, TlsgateError

if TYPE_CHECKING:
    from tlsgate.notify import Notifier

__all__ = ["app"]

app = typer.Typer(help="Expiry communications: e-mail, webhooks, status page, portal alert.", no_args_is_help=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", exists=True, dir_okay=False, help="TOML file with a [notify] table.")
]


def _notifier(ctx: typer.Context, config: Path | None, database_url: str | None) -> Notifier:
    from tlsgate.notify import Fleet, Notifier, load_notify_settings
    from tlsgate.portal.services import fleet, load_ca
    from tlsgate.portal.settings import PortalSettings
    from tlsgate.store import default_database_url, open_store

    app_ctx: AppContext = ctx.obj
    settings = load_notify_settings(config)
    store = open_store(database_url or default_database_url(app_ctx.data_dir))
    portal_settings = PortalSettings(data_dir=app_ctx.data_dir, database_url=database_url)

    def fleet_now() -> Fleet:
        with store.session() as session:
            counts = fleet(session, portal_settings, load_ca(portal_settings)).counts
        return Fleet(sum(counts.values()), counts["ready"], counts["at-risk"], counts["stale"])

    return Notifier(store, settings, ca_dir=app_ctx.ca_dir, fleet=fleet_now, agent_version=__version__)


@app.command()
def plan(
    ctx: typer.Context,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The schedule for the current root: each message, when it is due, and what became of it."""
    notifier = _notifier(ctx, config, database_url)
    now = notifier.clock()
    rows = []
    for message, recipient, record in notifier.planned():
        state = record.state if record is not None else ("due" if message.due_at <= now else "future")
        rows.append(
            {
                "item": message.item.name,
                "channel": message.channel.value,
                "recipient": recipient,
                "due_at": message.due_at.isoformat(),
                "state": state,
                "sent_at": record.sent_at.isoformat() if record is not None and record.sent_at else None,
                "error": record.last_error if record is not None else None,
            }
        )
    if as_json:
        print_json({"messages": rows})
        return
    table = Table(title="Expiry communications plan")
    for column in ("due", "item", "channel", "recipient", "state"):
        table.add_column(column)
    style = {"sent": "green", "failed": "red", "gave-up": "red", "unknown": "red", "due": "yellow", "future": "dim"}
    for row in rows:
        state = str(row["state"])
        shown = f"[{style.get(state, 'white')}]{state}[/]" + (f"\n{row['error']}" if row["error"] else "")
        table.add_row(str(row["due_at"])[:10], str(row["item"]), str(row["channel"]), str(row["recipient"]), shown)
    ctx.obj.out.print(table)


@app.command()
def run(
    ctx: typer.Context,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    every: Annotated[float | None, typer.Option("--every", help="Keep running: one pass every N seconds.")] = None,
) -> None:
    """One pass: send what is due, retry what failed, cancel what a renewal made moot."""
    if every is not None and every <= 0:
        raise ConfigError("--every must be positive")
    notifier = _notifier(ctx, config, database_url)
    err = ctx.obj.err
    while True:
        try:
            report = notifier.run_once()
            for line in report.sent:
                err.print(f"sent {line}")
            for line in report.failed:
                err.print(f"[red]failed {line}[/]")
            if report.update_completed:
                err.print("posted: update completed")
        except TlsgateError as exc:
            if every is None:
                raise
            err.print(f"[red]notify pass failed: {exc}[/]")
        if every is None:
            return
        time.sleep(every)
