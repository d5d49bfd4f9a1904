"""Exports are public certificates in the format a real tool reads back, and never a key."""

from __future__ import annotations

import pytest

from support.tls import openssl
from tlsgate.ca import ExportFormat, export_certificates, exported_versions
from tlsgate.errors import CAError


def test_pem_der_and_p7b_read_back_by_openssl(make_ca, clock) -> None:
    ca = make_ca(clock=clock)
    ca.renew()
    current = (ca.root.current.cert,)
    der = export_certificates(current, ExportFormat.DER)
    out = openssl("x509", "-inform", "DER", "-noout", "-fingerprint", "-sha256", input_data=der).stdout.decode()
    assert out.split("=", 1)[1].strip().replace(":", "").lower() == ca.root.current.sha256
    every = tuple(v.cert for v in exported_versions(ca, clock(), all_versions=True))
    assert len(every) == 2
    p7b = export_certificates(every, ExportFormat.P7B)
    printed = openssl("pkcs7", "-inform", "DER", "-print_certs", "-noout", input_data=p7b).stdout.decode()
    assert printed.count("subject=") == 2
    bundle = export_certificates(every, ExportFormat.PEM)
    assert bundle.count(b"BEGIN CERTIFICATE") == 2
    for data in (der, p7b, bundle):
        assert b"PRIVATE" not in data


def test_all_versions_leaves_out_expired_ones(make_ca, clock) -> None:
    ca = make_ca(clock=clock, days=10)
    ca.renew(days=3650)
    clock.advance(days=11)
    versions = exported_versions(ca, clock(), all_versions=True)
    assert [v.number for v in versions] == [2]


def test_der_refuses_several_certificates(make_ca) -> None:
    ca = make_ca()
    ca.renew()
    with pytest.raises(CAError, match="DER holds exactly one"):
        export_certificates(tuple(v.cert for v in ca.root.versions), ExportFormat.DER)
