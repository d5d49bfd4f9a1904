"""Time for everything that depends on it: one injectable clock.

A clock is any callable returning a timezone-aware UTC ``datetime``. Code that
reads the time takes a clock argument so tests can move through years.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "system_clock"]

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The real time, timezone-aware UTC."""
    return datetime.now(UTC)
