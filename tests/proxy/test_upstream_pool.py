"""The upstream pool keeps idle connections for reuse, within bounds per origin and in all."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tlsgate.errors import ConfigError
from tlsgate.proxy import ProxySettings
from tlsgate.proxy.events import Limits
from tlsgate.proxy.upstream import UpstreamPool, upstream_context


@dataclass
class FakeTransport:
    closing: bool = False

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str) -> None:
        return None


@dataclass(eq=False)  # identity-hashed, like the real connection
class FakeConn:
    origin: tuple[str, str, int]
    closed: bool = False
    reused: bool = True
    idle_since: float = 0.0
    owner: object = None

    def __post_init__(self) -> None:
        self.transport = FakeTransport()

    def close(self) -> None:
        self.closed = True


def pool(**kwargs: float) -> UpstreamPool:
    return UpstreamPool(upstream_context(), limits=Limits(8192, 65536, 100), connect_timeout=5, **kwargs)  # type: ignore[arg-type]


def test_idle_connections_are_reused_per_origin() -> None:
    p = pool()
    conn = FakeConn(("https", "a.test", 443))
    p.release(conn, now=1.0)  # type: ignore[arg-type]
    assert p.take_idle(("https", "a.test", 443), now=2.0) is conn
    assert p.take_idle(("https", "a.test", 443), now=2.0) is None


def test_many_origins_are_capped_by_closing_the_longest_idle() -> None:
    p = pool(max_idle=3)
    conns = [FakeConn(("https", f"h{i}.test", 443)) for i in range(5)]
    for i, conn in enumerate(conns):
        p.release(conn, now=float(i))  # type: ignore[arg-type]
    assert [c.closed for c in conns] == [True, True, False, False, False]
    assert p.take_idle(("https", "h4.test", 443), now=5.0) is conns[4]


def test_idle_timeout_sweeps_and_keeps_the_count_right() -> None:
    p = pool(max_idle=2, idle_timeout=10.0)
    first, second = FakeConn(("https", "a.test", 443)), FakeConn(("https", "b.test", 443))
    p.release(first, now=0.0)  # type: ignore[arg-type]
    p.release(second, now=5.0)  # type: ignore[arg-type]
    p.sweep(now=12.0)
    assert first.closed
    assert not second.closed
    third = FakeConn(("https", "c.test", 443))
    p.release(third, now=12.0)  # type: ignore[arg-type]
    assert not second.closed  # room was made by the sweep, not by evicting
    assert not third.closed


def test_evicting_an_origins_last_idle_connection_to_pool_another_of_it_loses_nothing() -> None:
    """Full pool, the oldest idle entry is origin A's only one, and a second A connection comes back."""
    a, b = ("https", "a.test", 443), ("https", "b.test", 443)
    p = pool(max_idle=2, idle_timeout=30.0)
    a1, b1, a2 = FakeConn(a), FakeConn(b), FakeConn(a)
    p.release(a1, now=1.0)  # type: ignore[arg-type]
    p.release(b1, now=2.0)  # type: ignore[arg-type]
    p.release(a2, now=3.0)  # type: ignore[arg-type]  # evicts a1, A's deque empties and goes
    assert a1.closed
    assert p.has_idle(a)
    assert p.take_idle(a, now=4.0) is a2  # the returned connection is found again
    p.release(a2, now=5.0)  # type: ignore[arg-type]
    a3 = FakeConn(a)
    p.release(a3, now=6.0)  # type: ignore[arg-type]  # evicts b1
    p.sweep(now=40.0)  # everything timed out: closed without errors
    assert a2.closed and a3.closed and b1.closed
    assert p.idle_count == 0
    assert not p.has_idle(a)


@pytest.mark.parametrize("name", ["pool_per_origin", "pool_max_idle"])
def test_pool_sizes_must_be_positive(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        ProxySettings(**{name: 0})  # type: ignore[arg-type]
