"""One gateway node: the proxy, the portal and the notifier as child processes of one supervisor.

``tlsgate serve`` builds the children's command lines and hands them here. The
supervisor starts them, forwards SIGTERM/SIGINT (the proxy drains in-flight
requests), and restarts a child that dies, with back-off; a child that keeps
dying (``restart_limit`` times within ``window`` seconds) stops the node with
exit status 1 so a service manager sees the failure.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Child", "Supervisor"]


@dataclass(frozen=True, slots=True)
class Child:
    name: str
    argv: tuple[str, ...]


class Supervisor:
    def __init__(
        self,
        children: Sequence[Child],
        *,
        env: Mapping[str, str] | None = None,
        restart_limit: int = 5,
        window: float = 60.0,
        stop_timeout: float = 35.0,
    ) -> None:
        self.children = list(children)
        self.env = dict(env) if env is not None else None
        self.restart_limit = restart_limit
        self.window = window
        self.stop_timeout = stop_timeout
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._deaths: dict[str, deque[float]] = {c.name: deque() for c in children}
        self._stopping = False

    def _start(self, child: Child) -> None:
        self._procs[child.name] = subprocess.Popen(child.argv, env=self.env)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for child in self.children:
            self._start(child)
        try:
            while not self._stopping:
                for child in self.children:
                    code = self._procs[child.name].poll()
                    if code is None or self._stopping:
                        continue
                    if not self._may_restart(child.name):
                        self._say(f"{child.name} exited with status {code} too often; stopping the node")
                        return 1
                    delay = 2 ** (len(self._deaths[child.name]) - 1)
                    self._say(f"{child.name} exited with status {code}; restarting in {delay} s")
                    time.sleep(delay)
                    self._start(child)
                time.sleep(0.2)
            return 0
        finally:
            self._stop_all()

    def _may_restart(self, name: str) -> bool:
        now = time.monotonic()
        deaths = self._deaths[name]
        deaths.append(now)
        while deaths and now - deaths[0] > self.window:
            deaths.popleft()
        return len(deaths) <= self.restart_limit

    def _stop_all(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for proc in self._procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    @staticmethod
    def _say(message: str) -> None:
        print(f"tlsgate serve: {message}", file=sys.stderr, flush=True)
