"""What every sub-command gets from the root command: the data directory, and output helpers."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

__all__ = ["AppContext", "app_context", "print_json"]


@dataclass(frozen=True, slots=True)
class AppContext:
    data_dir: Path

    @property
    def ca_dir(self) -> Path:
        return self.data_dir / "ca"

    @property
    def out(self) -> Console:
        return Console(highlight=False, soft_wrap=True)  # lines people copy (paths, URLs) are never broken

    @property
    def err(self) -> Console:
        return Console(stderr=True, highlight=False, soft_wrap=True)


def app_context(ctx: Any) -> AppContext:
    """The AppContext the root command put on a Typer context."""
    obj = getattr(ctx, "obj", None)
    if not isinstance(obj, AppContext):
        raise TypeError("the tlsgate root command sets the context")
    return obj


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
