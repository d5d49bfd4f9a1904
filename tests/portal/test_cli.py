"""``tlsgate admin create|reset-password`` and the portal command's options, through a local Typer root
(the lead registers them in tlsgate.cli.main)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tlsgate.cli import portal as portal_cli
from tlsgate.cli.context import AppContext
from tlsgate.portal.security import verify_password
from tlsgate.store import AdminAccount, AuditEntry, open_store

app = typer.Typer()
app.add_typer(portal_cli.admin_app, name="admin")
app.command("portal")(portal_cli.portal)


@app.callback()
def root(ctx: typer.Context, data_dir: Path = typer.Option(...)) -> None:  # noqa: B008
    ctx.obj = AppContext(data_dir)


def test_admin_create_and_reset(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path), "admin"]
    result = runner.invoke(app, [*base, "create", "Alice", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    first = result.stdout.split("One-time password: ")[1].split()[0]
    again = runner.invoke(app, [*base, "create", "alice", "--database-url", database_url])
    assert again.exit_code != 0
    monkeypatch.setenv("NEW_PW", "a brand new password")
    result = runner.invoke(
        app, [*base, "reset-password", "alice", "--database-url", database_url, "--password-env", "NEW_PW"]
    )
    assert result.exit_code == 0, result.output
    store = open_store(database_url)
    with store.session() as session:
        admin = session.query(AdminAccount).one()
        assert admin.username == "alice"
        assert verify_password(admin.password_hash, "a brand new password")
        assert not verify_password(admin.password_hash, first)
        assert not admin.must_change_password
        assert {e.action for e in session.query(AuditEntry)} == {"admin.create", "admin.reset-password"}
    store.dispose()
