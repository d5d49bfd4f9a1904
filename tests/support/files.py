"""File-tree helpers for tests that prove nothing changed on disk."""

from __future__ import annotations

import hashlib
from pathlib import Path


def tree_digest(path: Path) -> dict[str, str]:
    """Every file under ``path`` with its SHA-256: to prove an operation changed nothing."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }
