"""Benchmark of leaf minting, the proxy's first-contact cost (not a test; run it by hand or in CI logs).

    .venv/bin/python bench/ca/mint.py [--names 1000] [--lookups 200000] [--key ecdsa-p256] [--json FILE]

Measures, through the same ``LeafIssuer.get`` the proxy calls:
  * first contact: ``--names`` distinct host names, each minted with its TLS server context;
  * cached lookup: the same name asked again (``--lookups`` times);
and, to explain the first figure, its parts: key generation, certificate encoding + signature
(and, for comparison, cryptography's certificate builder, which the leaf encoder replaced), and
the ``ssl.SSLContext`` creation + ``load_cert_chain`` that Python's ssl module needs for every leaf.
The parts are measured warm, one at a time; the first-contact figure runs them in turn, as the
proxy does, and each runs colder there.
"""

from __future__ import annotations

import argparse
import json
import platform
import ssl
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding
from rich.console import Console
from rich.table import Table

from tlsgate.ca import CertificateAuthority, KeyType, LeafIssuer, default_server_context, profiles
from tlsgate.ca.keys import generate_key
from tlsgate.ca.leaf import _context_key_pem, _load_chain
from tlsgate.ca.leafder import LeafEncoder


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(fn, count: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(count):
        start = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - start) / 1e6)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", type=int, default=1000)
    parser.add_argument("--lookups", type=int, default=200_000)
    parser.add_argument("--key", default="ecdsa-p256", help="CA key type (leaves are always ECDSA P-256)")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "latest.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        ca = CertificateAuthority.init(Path(tmp) / "ca", key_type=KeyType.parse(args.key))
        material = ca.issuing_material()
        issuer = LeafIssuer(material, cache_size=args.names + 10)
        for i in range(20):  # warm up imports and OpenSSL's algorithm caches
            issuer.get((f"warm{i}.bench.test",))

        names = [f"host{i}.bench.test" for i in range(args.names)]
        first = []
        for name in names:
            start = time.perf_counter_ns()
            issuer.get((name,))
            first.append((time.perf_counter_ns() - start) / 1e6)

        hot = ("host1.bench.test",)
        start = time.perf_counter_ns()
        for _ in range(args.lookups):
            issuer.get(hot)
        cached_us = (time.perf_counter_ns() - start) / 1e3 / args.lookups

        now = datetime.now(UTC)
        key = generate_key(KeyType.ECDSA_P256)
        cert = profiles.build_leaf(
            key.public_key(),
            ("a.bench.test",),
            material.key,
            material.cert.subject,
            material.ski,
            now,
            now + timedelta(days=100),
        )
        chain_pem, key_pem = cert.public_bytes(Encoding.PEM), _context_key_pem(key)
        encoder = LeafEncoder(material.key, material.cert.subject, material.ski)
        n = min(500, args.names)
        parts = {
            "leaf key generation (ECDSA P-256)": timed(lambda: generate_key(KeyType.ECDSA_P256), n),
            "certificate encode + sign (LeafEncoder, what minting uses)": timed(
                lambda: encoder.encode(key.public_key(), ("a.bench.test",), now, now + timedelta(days=100)), n
            ),
            "certificate build + sign (cryptography's builder, for comparison)": timed(
                lambda: profiles.build_leaf(
                    key.public_key(),
                    ("a.bench.test",),
                    material.key,
                    material.cert.subject,
                    material.ski,
                    now,
                    now + timedelta(days=100),
                ),
                n,
            ),
            "ssl.SSLContext() + settings": timed(default_server_context, n),
            "ssl.SSLContext() + load_cert_chain (PEM decode in OpenSSL)": timed(
                lambda: _load_chain(default_server_context(), chain_pem, key_pem), n
            ),
        }

    result = {
        "machine": platform.platform(),
        "python": sys.version.split()[0],
        "openssl": ssl.OPENSSL_VERSION,
        "ca_key": args.key,
        "names": args.names,
        "first_contact_ms": {
            "median": statistics.median(first),
            "p90": percentile(first, 0.9),
            "p99": percentile(first, 0.99),
        },
        "cached_lookup_us": cached_us,
        "parts_median_ms": {k: statistics.median(v) for k, v in parts.items()},
        "targets": {"first_contact_median_ms": 1.0, "cached_lookup_us": 10.0},
    }
    table = Table(title=f"leaf minting — CA {args.key}, {args.names} names, {ssl.OPENSSL_VERSION}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    fc = result["first_contact_ms"]
    table.add_row("first contact (mint + TLS context), median", f"{fc['median']:.3f} ms", "≤ 1 ms")
    table.add_row("first contact p90 / p99", f"{fc['p90']:.3f} / {fc['p99']:.3f} ms", "")
    table.add_row("cached lookup", f"{cached_us:.2f} µs", "≤ 10 µs")
    for name, value in result["parts_median_ms"].items():
        table.add_row(f"  part: {name}", f"{value:.3f} ms", "")
    Console().print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
