"""Access events: one JSON object per line, for whatever log pipeline the user runs.

An :class:`AccessEvent` is a fact about one finished exchange, tunnel, block or refused
handshake. Sinks are plain callables; :class:`JsonLinesSink` writes to a file or stdout and
is flushed by the server once a second and on shutdown, so a request never waits on a disk.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

__all__ = ["AccessEvent", "EventSink", "JsonLinesSink", "open_sink"]


@dataclass(frozen=True, slots=True)
class AccessEvent:
    time: float  # UNIX time of the start
    client: str
    method: str
    scheme: str
    host: str
    port: int
    path: str
    status: int
    bytes_in: int  # request body bytes from the client
    bytes_out: int  # response body bytes to the client
    duration_ms: float
    action: str  # inspect / bypass / block / reject
    tls_error: str | None = None
    error: str | None = None

    def to_json(self) -> str:
        data = asdict(self)
        data["time"] = datetime.fromtimestamp(self.time, UTC).isoformat(timespec="milliseconds")
        data["duration_ms"] = round(self.duration_ms, 3)
        return json.dumps(data, separators=(",", ":"))


EventSink = Callable[[AccessEvent], None]


class JsonLinesSink:
    """Buffers lines; :meth:`flush` writes them."""

    def __init__(self, stream: IO[str], *, close: bool) -> None:
        self._stream = stream
        self._close = close
        self._lines: list[str] = []

    def __call__(self, event: AccessEvent) -> None:
        self._lines.append(event.to_json())
        if len(self._lines) >= 4096:
            self.flush()

    def flush(self) -> None:
        if self._lines:
            self._stream.write("\n".join(self._lines) + "\n")
            self._lines.clear()
        self._stream.flush()

    def close(self) -> None:
        self.flush()
        if self._close:
            self._stream.close()


def open_sink(target: str) -> JsonLinesSink:
    """``-`` is stdout, anything else a file opened for appending."""
    if target == "-":
        return JsonLinesSink(sys.stdout, close=False)
    return JsonLinesSink(Path(target).open("a", encoding="utf-8"), close=True)
