"""Two notifier processes on one PostgreSQL racing for the same items: each message goes out once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.notifying import Recorder, make_notifier
from tlsgate.ca import CertificateAuthority
from tlsgate.store import open_store
from tlsgate.store.testing import postgres_server


@pytest.fixture
def postgres_url() -> Iterator[str]:
    server = postgres_server()
    url = server.create_database()
    yield url
    server.drop_database(url)


class SlowRecorder(Recorder):
    """Holds each send for a moment, so the two workers overlap inside the delivery window."""

    def email(self, *args: object) -> None:  # type: ignore[override]
        time.sleep(0.05)
        super().email(*args)  # type: ignore[arg-type]

    def webhook(self, *args: object) -> None:  # type: ignore[override]
        time.sleep(0.05)
        super().webhook(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize("rounds", [5])
def test_two_workers_racing_send_each_message_once(postgres_url: str, clock, tmp_path: Path, rounds: int) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca", days=3, clock=clock)  # the critical last days: every channel
    open_store(postgres_url).dispose()  # migrated once, as `tlsgate serve` does before starting workers
    recorder = SlowRecorder()
    stores = [open_store(postgres_url, run_migrations=False) for _ in range(2)]
    errors: list[BaseException] = []
    reports = []
    for _ in range(rounds):
        barrier = threading.Barrier(2)

        def work(index: int, barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait()
                reports.append(make_notifier(stores[index], ca.path, clock, recorder).run_once())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        clock.advance(minutes=1)
    assert errors == []
    assert Counter(c for c, _, _ in recorder.sent) == {"email": 1, "webhook": 1}
    sent = [line for report in reports for line in report.sent]
    assert len(sent) == len(set(sent)) == 4  # e-mail, webhook, status post, portal alert — once in all
    for store in stores:
        store.dispose()
