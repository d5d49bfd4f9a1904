"""Real tools the tests drive. A missing tool fails the test: scripts/test installs them all, nothing is skipped."""

from __future__ import annotations

import shutil

import pytest


def require_tool(name: str) -> str:
    """The path of a real tool; a missing tool fails the test (scripts/test installs them all)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; run scripts/test, which installs every tool the tests use")
    return path
