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


def test_the_cli_default_portal_address_is_the_portals() -> None:
    from tlsgate.cli.portal import DEFAULT_PORTAL_LISTEN
    from tlsgate.portal.settings import DEFAULT_LISTEN

    assert DEFAULT_PORTAL_LISTEN == DEFAULT_LISTEN


def test_the_proxy_command_does_not_load_the_portal_or_the_store() -> None:
    """A proxy worker stays small: FastAPI, SQLAlchemy and httpx are loaded only by the commands that use them."""
    import subprocess
    import sys

    code = "import sys, tlsgate.cli.main, tlsgate.proxy.workers; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for heavy in ("fastapi", "sqlalchemy", "alembic", "httpx", "starlette", "jinja2"):
        assert f"'{heavy}'" not in loaded
