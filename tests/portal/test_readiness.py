from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tlsgate.errors import ConfigError
from tlsgate.portal.hosts import parse_host_list
from tlsgate.portal.readiness import Readiness, RootFacts, TrustedCert, assess

NOW = datetime(2030, 6, 1, tzinfo=UTC)
ROOT = RootFacts("CN=tlsgate Root,O=tlsgate", "ab" * 32, NOW + timedelta(days=3650))
DAY = timedelta(hours=24)


def _cert(not_after: datetime, subject: str = "cn=tlsgate Root, o=tlsgate", spki: str = "AB" * 32) -> TrustedCert:
    return TrustedCert(subject, spki, not_after)


def test_ready_by_identity_not_fingerprint() -> None:
    assert assess([_cert(ROOT.not_after)], ROOT, NOW, NOW, DAY).state is Readiness.READY


def test_old_version_only_is_at_risk() -> None:
    result = assess([_cert(NOW + timedelta(days=10))], ROOT, NOW, NOW, DAY)
    assert result.state is Readiness.AT_RISK
    assert "expiring" in result.reason


@pytest.mark.parametrize("cert", [_cert(ROOT.not_after, spki="cd" * 32), _cert(ROOT.not_after, subject="CN=other")])
def test_other_identity_is_at_risk(cert: TrustedCert) -> None:
    assert assess([cert], ROOT, NOW, NOW, DAY).state is Readiness.AT_RISK


def test_stale() -> None:
    assert assess([_cert(ROOT.not_after)], ROOT, NOW - 2 * DAY, NOW, DAY).state is Readiness.STALE
    assert assess([], ROOT, None, NOW, DAY).reason == "never checked in"


def test_host_list() -> None:
    assert parse_host_list(["B.test.", "*.a.test", "# c", "::1", "bücher.test"]) == [
        "*.a.test",
        "::1",
        "b.test",
        "xn--bcher-kva.test",
    ]
    for bad in ["a b", "-x.test", "*.", "x" * 64 + ".test"]:
        with pytest.raises(ConfigError):
            parse_host_list([bad])
