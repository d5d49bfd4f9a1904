"""Which build runs: ``tlsgate --version`` says it, and the classification is right for each case."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tlsgate import __version__, compiled


def test_version_names_the_build_this_checkout_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tlsgate", "--version"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == f"tlsgate {__version__} (proxy core: {compiled.build()})"


@pytest.mark.parametrize(
    ("modules", "build"),
    [
        (("uvloop.loop", "httptools.parser.parser"), "compiled"),  # extensions, as the build makes them
        (("uvloop.loop", "json.decoder"), "partly compiled"),
        (("json.decoder", "json.encoder"), "interpreted"),
    ],
)
def test_the_build_is_told_by_where_each_module_was_loaded_from(
    monkeypatch: pytest.MonkeyPatch, modules: tuple[str, ...], build: str
) -> None:
    monkeypatch.setattr(compiled, "MODULES", modules)
    assert compiled.build() == build
    assert compiled.compiled() is (build == "compiled")
