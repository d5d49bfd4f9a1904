"""``tlsgate proxy`` as a process: serve, write access events, drain on SIGTERM, N workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from badssl import Origin, plain_origin
from proxy_fixtures import TLSGATE, free_port, tlsgate_ca

from tlsgate import compiled

pytestmark = pytest.mark.integration
__all__ = ["tlsgate_ca"]


def start(data_dir: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    stderr = data_dir / f"proxy-{port}.err"
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tlsgate",
                "--data-dir",
                str(data_dir),
                "proxy",
                "--listen",
                f"127.0.0.1:{port}",
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        probe = subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/"], check=False)
        if probe.returncode == 0:
            return process, port
        time.sleep(0.1)
    process.kill()
    process.wait(5)
    raise AssertionError(stderr.read_text())


@pytest.fixture
def origin() -> Iterator[Origin]:
    with plain_origin("cli-origin") as server:
        yield server


def test_serves_logs_and_drains_on_sigterm(tlsgate_ca: tuple[Path, Path], origin: Origin, tmp_path: Path) -> None:
    log = tmp_path / "access.jsonl"
    process, port = start(tlsgate_ca[0].parent, "--access-log", str(log))
    try:
        slow = subprocess.Popen(
            [
                "curl",
                "-sS",
                "--max-time",
                "10",
                "-x",
                f"http://127.0.0.1:{port}",
                f"http://127.0.0.1:{origin.port}/slow",
            ],
            stdout=subprocess.PIPE,
        )
        time.sleep(0.4)  # the slow request is in flight
        process.send_signal(signal.SIGTERM)
        out, _ = slow.communicate(timeout=15)
        assert out == b"slow but done"
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    slow_event = next(e for e in lines if e["path"].endswith("/slow"))
    assert slow_event["status"] == 200
    assert slow_event["method"] == "GET"
    assert slow_event["action"] == "inspect"
    assert slow_event["duration_ms"] >= 900
    assert set(slow_event) >= {"time", "client", "scheme", "host", "bytes_in", "bytes_out", "tls_error"}
    started = (tlsgate_ca[0].parent / f"proxy-{port}.err").read_text().splitlines()[0]
    assert started == f"tlsgate proxy: listening on 127.0.0.1:{port} (proxy core: {compiled.build()})"


def test_two_workers_share_the_port(tlsgate_ca: tuple[Path, Path], origin: Origin) -> None:
    process, port = start(tlsgate_ca[0].parent, "--workers", "2")
    try:
        for i in range(20):
            result = subprocess.run(
                ["curl", "-sS", "-x", f"http://127.0.0.1:{port}", f"http://127.0.0.1:{origin.port}/w{i}"],
                capture_output=True,
                check=False,
                timeout=10,
            )
            assert result.stdout == f"hello from cli-origin /w{i}".encode()
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_missing_ca_is_one_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tlsgate", "--data-dir", str(tmp_path), "proxy", "--listen", "127.0.0.1:0"],
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.decode().strip() == (
        f"tlsgate: error: no CA in {tmp_path / 'ca'} (create one with 'tlsgate ca init')"
    )


def test_the_worker_module_alone_refuses_to_start_without_its_settings() -> None:
    result = subprocess.run([sys.executable, "-m", "tlsgate.proxy"], capture_output=True, check=False, timeout=30)
    assert result.returncode == 2
    assert result.stderr.decode().strip() == (
        "tlsgate: error: the proxy worker is started by 'tlsgate proxy', not directly"
    )


def _proxy_cli(
    data_dir: Path, *args: str, listen: str = "127.0.0.1:0", cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [TLSGATE, "--data-dir", str(data_dir), "proxy", "--listen", listen, *args],
        capture_output=True,
        check=False,
        timeout=30,
        cwd=cwd,
    )


def test_the_worker_never_imports_from_the_working_directory(tmp_path: Path) -> None:
    """A module planted in the directory the proxy is started from must not run as the proxy."""
    planted = tmp_path / "cwd"
    planted.mkdir()
    (planted / "uvloop.py").write_text("raise SystemExit(99)\n")
    result = _proxy_cli(tmp_path / "data", cwd=planted)
    assert result.returncode == 1  # the worker started with the real uvloop and stopped on the missing CA
    assert "no CA in" in result.stderr.decode()


def test_a_large_configuration_reaches_the_worker(tmp_path: Path) -> None:
    """5,000 block globs (~165 KB): more than one environment string may hold."""
    config = tmp_path / "big.toml"
    config.write_text("block = [" + ", ".join(f'"blocked-{i:05d}.example.org"' for i in range(5000)) + "]\n")
    result = _proxy_cli(tmp_path / "data", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.decode().strip() == (
        f"tlsgate: error: no CA in {tmp_path / 'data' / 'ca'} (create one with 'tlsgate ca init')"
    )


def test_a_setting_of_the_wrong_type_is_one_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "typed.toml"
    config.write_text("access_log = 1979-05-27\n")
    result = _proxy_cli(tmp_path / "data", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.decode().strip() == f"tlsgate: error: {config}: access_log must be a string"


def test_a_port_in_use_is_one_clear_error(tlsgate_ca: tuple[Path, Path]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = _proxy_cli(tlsgate_ca[0].parent, listen=f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stderr.decode().strip() == (
        f"tlsgate: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
