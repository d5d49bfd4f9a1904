"""Real clients through the proxy: curl trusting only our root, and httpx."""

from __future__ import annotations

import hashlib
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from badssl import BadSSL, big_body, plain_origin
from proxy_fixtures import ProxyThread, badssl, issuer, proxy, tlsgate_ca

pytestmark = pytest.mark.integration
__all__ = ["badssl", "issuer", "proxy", "tlsgate_ca"]  # fixtures used by name


def curl(proxy: ProxyThread, root: Path, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "20", "-x", proxy.url, "--cacert", str(root), *args],
        input=data,
        capture_output=True,
        check=False,
        timeout=30,
    )


def test_get_through_interception(proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL) -> None:
    result = curl(proxy, tlsgate_ca[1], "-D", "-", badssl.url("good", "/hello"))
    assert result.returncode == 0, result.stderr
    assert b"hello from good /hello" in result.stdout
    assert b"Via: 1.1 tlsgate" in result.stdout
    event = proxy.wait_for_event(lambda e: e.path == "/hello")
    assert (event.method, event.scheme, event.host, event.status, event.action) == (
        "GET",
        "https",
        "good.test",
        200,
        "inspect",
    )
    assert event.bytes_out == len(b"hello from good /hello")


def test_leaf_is_ours_and_names_the_host(proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL) -> None:
    result = curl(proxy, tlsgate_ca[1], "-v", badssl.url("good"))
    assert result.returncode == 0
    assert b'subjectAltName: host "good.test" matched' in result.stderr
    assert b"tlsgate" in result.stderr.split(b"issuer:")[1].split(b"\n")[0]


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (bytes(range(256)) * (8 * 4096), ()),  # 8 MiB, Content-Length, streamed
        (b"z" * 300_000, ("-H", "Transfer-Encoding: chunked")),
        (b"e" * 2_000_000, ("-H", "Expect: 100-continue")),
    ],
    ids=["large-streamed", "chunked", "expect-100-continue"],
)
def test_request_body_reaches_the_origin_intact(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL, body: bytes, headers: tuple[str, ...]
) -> None:
    result = curl(
        proxy,
        tlsgate_ca[1],
        *headers,
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        "@-",
        badssl.url("good", "/echo"),
        data=body,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == f"{len(body)} {hashlib.sha256(body).hexdigest()}"


def test_chunked_response(proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL) -> None:
    result = curl(proxy, tlsgate_ca[1], "-D", "-", badssl.url("good", "/chunked"))
    assert result.returncode == 0
    assert b"Transfer-Encoding: chunked" in result.stdout
    assert result.stdout.endswith(b"chunk-0;chunk-1;chunk-2;chunk-3;chunk-4;")


def test_big_response(proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL) -> None:
    result = curl(proxy, tlsgate_ca[1], badssl.url("good", "/big?n=5000003"))
    assert result.returncode == 0
    assert result.stdout == big_body(0, 5_000_003)


def test_big_plain_http_response(proxy: ProxyThread, tlsgate_ca: tuple[Path, Path]) -> None:
    with plain_origin("plain") as origin:
        result = curl(proxy, tlsgate_ca[1], f"http://plain.test:{origin.port}/big?n=3000001")
    assert result.returncode == 0
    assert result.stdout == big_body(0, 3_000_001)


def test_head_and_204_have_no_body(proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL) -> None:
    head = curl(proxy, tlsgate_ca[1], "-I", badssl.url("good", "/hello"))
    assert head.returncode == 0
    assert b"Content-Length: 22" in head.stdout
    nothing = curl(proxy, tlsgate_ca[1], "-D", "-", badssl.url("good", "/nocontent"), badssl.url("good", "/hello"))
    assert nothing.returncode == 0
    assert b"HTTP/1.1 204" in nothing.stdout
    assert nothing.stdout.endswith(b"hello from good /hello")


def test_keep_alive_reuses_both_connections(proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL) -> None:
    urls = [badssl.url("good", f"/k{i}") for i in range(5)]
    result = curl(proxy, tlsgate_ca[1], "-v", *urls)
    assert result.returncode == 0
    assert result.stderr.count(b"Re-using existing connection") + result.stderr.count(b"Reusing existing") >= 4
    events = [proxy.wait_for_event(lambda e, p=f"/k{i}": e.path == p) for i in range(5)]
    assert len({e.client for e in events}) == 1


def test_hop_by_hop_removed_and_via_added(proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL) -> None:
    result = curl(
        proxy,
        tlsgate_ca[1],
        "-H",
        "Connection: keep-alive, X-Secret",
        "-H",
        "X-Secret: 1",
        "-H",
        "Keep-Alive: timeout=5",
        "-H",
        "X-End: 2",
        badssl.url("good", "/headers"),
    )
    seen = result.stdout.decode()
    assert "x-end: 2" in seen
    assert "x-secret" not in seen
    assert "keep-alive" not in seen
    assert "via: 1.1 tlsgate" in seen


def test_plain_http_absolute_form(proxy: ProxyThread, tlsgate_ca: tuple[Path, Path]) -> None:
    with plain_origin("plain") as origin:
        result = curl(proxy, tlsgate_ca[1], f"http://plain.test:{origin.port}/p?q=1")
        assert result.returncode == 0
        assert result.stdout == b"hello from plain /p?q=1"


def test_blocked_host(proxy: ProxyThread, tlsgate_ca: tuple[Path, Path]) -> None:
    result = curl(proxy, tlsgate_ca[1], "-D", "-", "http://blocked.test/")
    assert b"HTTP/1.1 403" in result.stdout
    assert b"blocked by the gateway" in result.stdout
    https = curl(proxy, tlsgate_ca[1], "https://blocked.test/")
    assert https.returncode != 0
    assert proxy.wait_for_event(lambda e: e.action == "block" and e.host == "blocked.test")


def test_httpx_through_the_proxy(proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL) -> None:
    with httpx.Client(
        proxy=proxy.url, verify=ssl.create_default_context(cafile=str(tlsgate_ca[1])), timeout=10
    ) as client:
        for i in range(3):
            response = client.get(badssl.url("good", f"/x{i}"))
            assert response.status_code == 200
            assert response.text == f"hello from good /x{i}"
        posted = client.post(badssl.url("good", "/echo"), content=b"abc" * 1000)
        assert posted.text.startswith("3000 ")
        bad = client.get(badssl.url("expired"))
        assert bad.status_code == 502
        assert "certificate expired" in bad.text


def test_requests_curl_gives_up_on_are_in_the_access_log(
    proxy: ProxyThread, tlsgate_ca: tuple[Path, Path], badssl: BadSSL
) -> None:
    """curl times out waiting for an answer, and mid-download: both requests are logged as cut."""
    waited = curl(proxy, tlsgate_ca[1], "--max-time", "0.5", badssl.url("good", "/slow?curl-gave-up"))
    assert waited.returncode == 28, waited.stderr  # curl: operation timed out
    size = 2_000_000_000
    download = curl(proxy, tlsgate_ca[1], "-o", "/dev/null", "--max-time", "1", badssl.url("good", f"/big?n={size}"))
    assert download.returncode == 28, download.stderr

    event = proxy.wait_for_event(lambda e: e.path == "/slow?curl-gave-up")
    assert (event.method, event.host, event.status) == ("GET", "good.test", 0)
    assert event.error == "client closed the connection"
    assert event.duration_ms < 900  # logged when curl left, not when the origin answered (1 s)
    event = proxy.wait_for_event(lambda e: e.path == f"/big?n={size}")
    assert event.status == 200
    assert 0 < event.bytes_out < size
    assert event.error is not None and event.error.startswith("client "), event.error
