"""A year with an injected clock: the default plan's messages, each on its day, once; none after a renew."""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from support.notifying import DAY, Recorder, make_notifier
from tlsgate.ca import CertificateAuthority
from tlsgate.notify import DEFAULT_PLAN, Channel, due_messages, plan_for
from tlsgate.store.models import Notification, StatusPost


def expected_schedule(expires_days: int) -> dict[tuple[str, str], int]:
    """(item, channel) -> the day (counted from the CA's creation) the default plan sends it."""
    return {
        (item.name, channel.value): expires_days - item.before_expiry.days
        for item in DEFAULT_PLAN
        for channel in item.channels
    }


def test_default_plan_items_and_channels(clock) -> None:
    planned = plan_for("ab" * 32, clock.now + 365 * DAY)
    assert [m.item.name for m in planned if m.channel is Channel.EMAIL] == [
        "announcement", "reminder-6-months", "reminder-3-months", "reminder-2-months",
        "reminder-6-weeks", "reminder-1-week", "critical-last-days",
    ]  # fmt: skip
    assert {m.item.name for m in planned if m.channel is Channel.PORTAL} == {"portal-modal"}
    assert {m.item.name for m in planned if m.channel is Channel.STATUS} == {"announcement", "critical-last-days"}


def test_a_late_start_sends_only_the_latest_due_message_per_channel(clock) -> None:
    planned = plan_for("ab" * 32, clock.now + 30 * DAY)  # tlsgate first runs a month before expiry
    send, superseded = due_messages(planned, clock.now)
    assert {(m.item.name, m.channel.value) for m in send} == {
        ("reminder-6-weeks", "email"), ("reminder-6-weeks", "webhook"),
        ("portal-modal", "portal"), ("announcement", "status"),
    }  # fmt: skip
    assert ("reminder-2-months", "email") in {(m.item.name, m.channel.value) for m in superseded}


def test_a_whole_year_sends_each_message_on_its_day_exactly_once(store, clock, tmp_path: Path) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca", days=365, clock=clock)
    recorder = Recorder()
    start = clock.now
    seen: dict[tuple[str, str, str], list[int]] = {}
    for day in range(0, 368):
        clock.now = start + day * DAY
        # Each pass is a fresh notifier, as after a restart: nothing may be sent twice.
        report = make_notifier(store, ca.path, clock, recorder).run_once()
        for line in report.sent:
            key, recipient = line.split(" → ")
            _, item, channel = key.rsplit("/", 2)
            seen.setdefault((item, channel, recipient), []).append(day)
    expected = expected_schedule(365)
    recipients = {"email": "secops@example.test", "webhook": "https://hooks.example.test/tlsgate",
                  "status": "status-page", "portal": "portal"}  # fmt: skip
    assert seen == {(item, channel, recipients[channel]): [day] for (item, channel), day in expected.items()}
    # What reached the wire and the status page, once each:
    assert Counter(c for c, _, _ in recorder.sent) == {"email": 7, "webhook": 7}
    with store.session() as session:
        posts = session.scalars(select(StatusPost).order_by(StatusPost.published_at)).all()
        assert [p.kind for p in posts] == ["reminder", "incident"]
        assert "expires in 335 days" in posts[0].title
        assert "ACTION REQUIRED" in posts[1].title
        states = Counter(r.state for r in session.scalars(select(Notification)))
    assert states == {"sent": len(expected)}


def test_a_renewal_cancels_the_old_plan_and_posts_update_completed_once(store, clock, tmp_path: Path) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca", days=365, clock=clock)
    recorder = Recorder()
    start = clock.now
    for day in range(0, 275):  # through the 6-month reminder and up to the 3-month one
        clock.now = start + day * DAY
        if day == 274:
            recorder.fail_email = 1  # the 3-month e-mail fails and waits for a retry
        make_notifier(store, ca.path, clock, recorder).run_once()
    with store.session() as session:
        assert session.scalars(select(Notification).where(Notification.state == "failed")).one()
    sent_before = len(recorder.sent)
    ca.renew(days=3650)
    for day in range(275, 368):
        clock.now = start + day * DAY
        make_notifier(store, ca.path, clock, recorder).run_once()
    assert len(recorder.sent) == sent_before  # no reminder about the old expiry, and no retry of it
    with store.session() as session:
        rows = session.scalars(select(Notification)).all()
        assert [r.state for r in rows if r.plan_item.endswith("reminder-3-months") and r.channel == "email"] == [
            "cancelled"
        ]
        completed = [r for r in rows if r.plan_item.endswith("update-completed")]
        assert len(completed) == 1
        posts = session.scalars(select(StatusPost).where(StatusPost.title.like("%Update completed%"))).all()
        assert len(posts) == 1
        assert f"valid until {ca.root.current.not_after:%Y-%m-%d}" in posts[0].title


def test_a_failed_channel_is_retried_with_back_off_and_the_others_go_on(store, clock, tmp_path: Path) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca", days=7, clock=clock)  # inside the last week
    recorder = Recorder(fail_email=1)
    first = make_notifier(store, ca.path, clock, recorder).run_once()
    assert len(first.failed) == 1
    assert "451 try later" in first.failed[0]
    assert ("webhook", "https://hooks.example.test/tlsgate") in [(c, r) for c, r, _ in recorder.sent]
    clock.advance(minutes=1)
    assert make_notifier(store, ca.path, clock, recorder).run_once().sent == []  # not before its back-off
    clock.advance(minutes=5)
    retried = make_notifier(store, ca.path, clock, recorder).run_once()
    assert [line.endswith("(retry)") for line in retried.sent] == [True]
    assert [c for c, _, _ in recorder.sent].count("email") == 1


def test_a_sender_that_died_mid_send_is_never_sent_again(store, clock, tmp_path: Path) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca", days=7, clock=clock)
    recorder = Recorder()

    class Died(BaseException):
        pass

    def die(*args: object) -> None:
        raise Died

    notifier = make_notifier(store, ca.path, clock, recorder)
    notifier.senders = type(notifier.senders)(email=die, webhook=recorder.webhook)
    with contextlib.suppress(Died):
        notifier.run_once()
    clock.advance(minutes=30)
    report = make_notifier(store, ca.path, clock, recorder).run_once()
    assert not any("secops" in line for line in report.sent)
    with store.session() as session:
        email = session.scalars(
            select(Notification).where(
                Notification.channel == "email", Notification.plan_item.like("%/reminder-1-week")
            )
        ).one()
    assert email.state == "unknown"
    assert "not sent again" in (email.last_error or "")
