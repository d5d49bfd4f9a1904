#!/usr/bin/env python3
"""Side-by-side benchmark of TLS-intercepting forward proxies.

Targets, all measured in ONE invocation against the same local HTTPS origin
(nginx on 127.0.0.1 with a test CA made here):

  direct     the origin itself, no proxy (the ceiling)
  tlsgate    the proxy under test (skipped, not failed, when not installed)
  mitmproxy  mitmdump from PyPI, own venv under .work/
  squid      squid-openssl with ssl-bump, own config under .work/

Figures per target (medians over --runs runs):
  1. keep-alive req/s and p99 latency, 1 KiB body, 50 clients (hey)
  2. new connection per request req/s (hey -disable-keepalive)
  3. 100 KiB body MB/s (hey, keep-alive)
  4. first contact with N distinct host names, sequential, ms/host
     (stdlib client below: CONNECT, TLS with SNI, GET, read)
  5. peak RSS of the proxy process tree (sum of VmHWM), MiB

Standard library only; uses `rich` for the table if it happens to be
importable.  See README.md for the method.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as _dt
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
WORK = HERE / ".work"
RUN_DIR = WORK / "run"
RESULTS = HERE / "results"
MITM_VENV = WORK / "mitmproxy-venv"
NS_ENV = "TLSGATE_BENCH_IN_NS"

DOMAIN = "bench.test"
LOAD_HOST = f"h1.{DOMAIN}"
SIZES = {"1k": 1024, "100k": 100 * 1024}
ALL_TARGETS = ["direct", "tlsgate", "mitmproxy", "squid"]

DEFAULT_TLSGATE_CMD = "tlsgate proxy --listen 127.0.0.1:{port} --upstream-ca {upstream_ca}"

FIGURES = [
    # key, label, unit, higher_is_better
    ("ka_1k_rps", "keep-alive 1 KiB", "req/s", True),
    ("ka_1k_p99_ms", "keep-alive 1 KiB p99", "ms", False),
    ("newconn_rps", "new conn per request", "req/s", True),
    ("large_100k_mbps", "100 KiB body", "MB/s", True),
    ("first_contact_ms", "first contact, distinct hosts", "ms/host", False),
    # what the proxy itself spent per response (its process tree's CPU time / responses): its cost
    # apart from how the 2 cores were shared with hey and the origin
    ("ka_1k_proxy_cpu_us", "keep-alive 1 KiB, proxy CPU", "us/response", False),
    ("newconn_proxy_cpu_us", "new conn per request, proxy CPU", "us/response", False),
    ("large_100k_proxy_cpu_us", "100 KiB body, proxy CPU", "us/response", False),
    ("peak_rss_mib", "peak RSS proxy tree", "MiB", False),
]


def log(msg: str = "") -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------
# process bookkeeping: everything started is stopped at the end
# --------------------------------------------------------------------------

_procs: list[subprocess.Popen] = []
_cleanups: list = []
_cleaned = False


def spawn(
    argv: list[str], *, log_path: Path | None = None, env: dict | None = None, cwd: Path | None = None
) -> subprocess.Popen:
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(log_path, "ab")) if log_path else subprocess.DEVNULL
        p = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT if log_path else subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    _procs.append(p)
    return p


def stop(p: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process group, wait, then SIGKILL it."""
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(grace)
    # the group may still hold children (helpers) even if the leader exited
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        p.wait(2)
    if p in _procs:
        _procs.remove(p)


def cleanup_all() -> None:
    global _cleaned
    if _cleaned:
        return
    _cleaned = True
    for p in list(reversed(_procs)):
        stop(p, grace=3.0)
    for fn in reversed(_cleanups):
        try:
            fn()
        except Exception as e:
            log(f"cleanup error: {e}")


def _on_signal(signum, _frame):
    log(f"\ninterrupted by signal {signum}; stopping everything")
    cleanup_all()
    sys.exit(128 + signum)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def run(argv, *, check=True, timeout=120, env=None, capture=True) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, check=check, timeout=timeout, env=env, stdin=subprocess.DEVNULL, capture_output=capture, text=True
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen | None, timeout: float, log_path: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"process exited with code {proc.returncode} before listening on {port}" + tail(log_path)
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f}s" + tail(log_path))


def tail(path: Path | None, n: int = 15) -> str:
    if not path or not path.exists():
        return ""
    lines = path.read_text(errors="replace").splitlines()[-n:]
    return "\n  | " + "\n  | ".join(lines) if lines else ""


def fmt_num(v, key: str) -> str:
    if v is None:
        return "-"
    if key.endswith(("_rps", "_cpu_us")):
        return f"{v:,.0f}"
    if key == "peak_rss_mib":
        return f"{v:,.1f}"
    if key == "large_100k_mbps":
        return f"{v:,.1f}"
    return f"{v:,.2f}"


# --------------------------------------------------------------------------
# name resolution: private mount namespace with our own /etc/hosts
# --------------------------------------------------------------------------


def host_names(runs: int, hosts: int) -> list[str]:
    names = [DOMAIN, LOAD_HOST]
    for r in range(1, runs + 1):
        names += [fc_name(r, i) for i in range(hosts)]
    return names


def fc_name(run_no: int, i: int) -> str:
    # one DNS label, so the origin's *.bench.test wildcard matches
    return f"r{run_no}h{i}.{DOMAIN}"


def hosts_file_text(names: list[str]) -> str:
    out = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    out += [f"127.0.0.1 {n}" for n in names]
    return "\n".join(out) + "\n"


def _unshare_works(flags: list[str]) -> bool:
    try:
        return subprocess.run(["unshare", *flags, "true"], capture_output=True, timeout=10).returncode == 0
    except Exception:
        return False


def maybe_reexec_in_namespace(argv: list[str]) -> None:
    """As root, re-exec this script inside `unshare --mount --net`: a private
    loopback (port 443 is ours, no traffic can leave) and a private
    /etc/hosts + /etc/resolv.conf bind-mounted from .work.  The host's files
    and network are never modified."""
    if os.environ.get(NS_ENV) or os.geteuid() != 0 or not shutil.which("unshare"):
        return
    options = [["--mount", "--net"], ["--mount"]]
    if os.environ.get("TLSGATE_BENCH_NO_NETNS"):
        options = options[1:]
    for flags in options:
        if _unshare_works(flags):
            env = dict(os.environ, **{NS_ENV: " ".join(flags)})
            ns_argv = ["unshare", *flags, "--propagation", "private", sys.executable, str(Path(__file__).resolve())]
            os.execvpe("unshare", [*ns_argv, *argv], env)  # noqa: S606


def loopback_up() -> None:
    if shutil.which("ip"):
        run(["ip", "link", "set", "lo", "up"])
        return
    import fcntl
    import struct

    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def setup_resolution(names: list[str]) -> str:
    WORK.mkdir(parents=True, exist_ok=True)
    hosts = WORK / "hosts"
    hosts.write_text(hosts_file_text(names))
    resolv = WORK / "resolv.conf"
    # nothing listens on 127.0.0.1:53: any name we did not list fails fast and
    # no DNS query ever leaves the machine
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    ns = os.environ.get(NS_ENV)
    if ns:
        if "--net" in ns:
            loopback_up()
        run(["mount", "--bind", str(hosts), "/etc/hosts"])
        if Path("/etc/resolv.conf").exists():
            run(["mount", "--bind", str(resolv), "/etc/resolv.conf"])
        return f"private namespaces (unshare {ns}): /etc/hosts bind-mounted from .work/hosts" + (
            ", own loopback" if "--net" in ns else ""
        )
    if os.geteuid() == 0:
        # fallback: edit /etc/hosts in place, restored at exit
        orig = Path("/etc/hosts").read_bytes()
        backup = WORK / "hosts.orig"
        backup.write_bytes(orig)

        def restore():
            Path("/etc/hosts").write_bytes(orig)

        _cleanups.append(restore)
        marker = "\n# tlsgate-bench (temporary; restored at exit)\n"
        Path("/etc/hosts").write_bytes(orig + marker.encode() + "".join(f"127.0.0.1 {n}\n" for n in names).encode())
        return "unshare unavailable: /etc/hosts edited in place and restored at exit"
    raise SystemExit(
        "bench.py needs root (to give the proxies a private /etc/hosts via unshare --mount); run it as root"
    )


# --------------------------------------------------------------------------
# PKI with openssl
# --------------------------------------------------------------------------


def make_ca(d: Path, name: str, cn: str) -> tuple[Path, Path]:
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    cnf = d / f"{name}.cnf"
    cnf.write_text(
        "[req]\ndistinguished_name=dn\nprompt=no\n[dn]\nCN=" + cn + "\nO=tlsgate bench\n"
        "[v3_ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\n"
    )
    run(
        [
            "openssl",
            "req",
            "-x509",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "3650",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-config",
            str(cnf),
            "-extensions",
            "v3_ca",
        ]
    )
    return crt, key


def make_leaf(d: Path, name: str, ca_crt: Path, ca_key: Path) -> tuple[Path, Path]:
    key, csr, crt = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt"
    cnf = d / f"{name}.cnf"
    cnf.write_text(
        "[req]\ndistinguished_name=dn\nprompt=no\n[dn]\nCN=" + DOMAIN + "\n"
        "[v3]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
        f"subjectAltName=DNS:*.{DOMAIN},DNS:{DOMAIN},IP:127.0.0.1\n"
    )
    run(
        [
            "openssl",
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(csr),
            "-config",
            str(cnf),
        ]
    )
    run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca_crt),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-days",
            "825",
            "-sha256",
            "-extfile",
            str(cnf),
            "-extensions",
            "v3",
            "-out",
            str(crt),
        ]
    )
    return crt, key


# --------------------------------------------------------------------------
# origin: nginx
# --------------------------------------------------------------------------


class Origin:
    def __init__(self, d: Path):
        self.dir = d
        # hey puts "host:port" into the TLS SNI when the URL has a port, which
        # a proxy that checks names (squid) rejects; so the origin sits on 443
        self.port = 443
        self.bad_port = free_port()
        self.proc = None

    def start(self) -> None:
        d = self.dir
        pki = d / "pki"
        pki.mkdir(parents=True)
        self.ca_crt, self.ca_key = make_ca(pki, "origin-ca", "tlsgate bench origin test CA")
        self.crt, self.key = make_leaf(pki, "origin", self.ca_crt, self.ca_key)
        # a second origin whose cert chains to a CA nobody trusts: a proxy that
        # verifies upstream must refuse it
        rogue_crt, rogue_key = make_ca(pki, "rogue-ca", "untrusted rogue CA")
        self.bad_crt, self.bad_key = make_leaf(pki, "bad-origin", rogue_crt, rogue_key)
        www = d / "www"
        www.mkdir()
        for name, size in SIZES.items():
            (www / name).write_bytes(os.urandom(size))
        for sub in ("tmp", "logs"):
            (d / sub).mkdir()
        user = "user root root;\n" if os.geteuid() == 0 else ""
        conf = d / "nginx.conf"
        tmp = d / "tmp"
        conf.write_text(f"""{user}worker_processes auto;
worker_rlimit_nofile 65536;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    ssl_protocols TLSv1.2 TLSv1.3;
    server {{
        listen 127.0.0.1:{self.port} ssl;
        server_name {DOMAIN} *.{DOMAIN};
        ssl_certificate {self.crt};
        ssl_certificate_key {self.key};
        root {www};
        location / {{ }}
    }}
    server {{
        listen 127.0.0.1:{self.bad_port} ssl;
        server_name _;
        ssl_certificate {self.bad_crt};
        ssl_certificate_key {self.bad_key};
        root {www};
        location / {{ }}
    }}
}}
""")
        lp = d / "logs" / "nginx.out"
        try:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", self.port))
        except OSError as e:
            raise SystemExit(
                f"origin needs 127.0.0.1:{self.port} and cannot bind it ({e}); without "
                "`unshare --net` (root) something else on this machine holds it"
            ) from None
        self.proc = spawn(["nginx", "-c", str(conf), "-p", str(d)], log_path=lp)
        wait_port(self.port, self.proc, 15, lp)
        wait_port(self.bad_port, self.proc, 15, lp)

    def url(self, host: str, path: str, port: int | None = None) -> str:
        port = port or self.port
        return f"https://{host}/{path}" if port == 443 else f"https://{host}:{port}/{path}"


# --------------------------------------------------------------------------
# proxies
# --------------------------------------------------------------------------


class Target:
    name = "?"
    is_proxy = True

    def __init__(self, ctx):
        self.ctx = ctx
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.ca_cert: Path | None = None
        self.log_path: Path | None = None

    def available(self) -> str | None:
        """None if usable, else the reason to skip."""
        return None

    def prepare(self) -> None:
        """One-time setup (CA etc.) before the first run."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def version(self) -> str:
        return ""


class Direct(Target):
    name = "direct"
    is_proxy = False

    def prepare(self):
        self.ca_cert = self.ctx.origin.ca_crt

    def start(self):
        pass


class Mitmproxy(Target):
    name = "mitmproxy"

    def mitmdump(self) -> Path:
        return MITM_VENV / "bin" / "mitmdump"

    def available(self):
        if not self.mitmdump().exists():
            return f"{self.mitmdump()} missing (run bench/proxy/setup.sh)"
        return None

    def version(self):
        try:
            out = run([str(self.mitmdump()), "--version"], timeout=60).stdout
            m = re.search(r"Mitmproxy:\s*(\S+)", out)
            return m.group(1) if m else out.strip().splitlines()[0]
        except Exception:
            return "?"

    def prepare(self):
        self.dir = self.ctx.run_dir / "mitmproxy"
        self.dir.mkdir()
        self.confdir = self.dir / "conf"

    def start(self):
        self.port = free_port()
        self.log_path = self.dir / f"mitmdump.{self.port}.log"
        argv = [
            str(self.mitmdump()),
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            str(self.port),
            "--set",
            f"confdir={self.confdir}",
            "--set",
            f"ssl_verify_upstream_trusted_ca={self.ctx.origin.ca_crt}",
            "--set",
            "ssl_insecure=false",
            "--set",
            "termlog_verbosity=warn",
            "--set",
            "flow_detail=0",
            "-q",
        ]
        self.proc = spawn(argv, log_path=self.log_path)
        wait_port(self.port, self.proc, 60, self.log_path)
        self.ca_cert = self.confdir / "mitmproxy-ca-cert.pem"
        if not self.ca_cert.exists():
            raise RuntimeError(f"mitmproxy CA {self.ca_cert} not created")


SQUID_CERTGEN_CANDIDATES = [
    "/usr/lib/squid/security_file_certgen",
    "/usr/lib64/squid/security_file_certgen",
    "/usr/libexec/squid/security_file_certgen",
]


class Squid(Target):
    name = "squid"

    def certgen(self) -> str | None:
        for c in SQUID_CERTGEN_CANDIDATES:
            if os.path.exists(c):
                return c
        return None

    def available(self):
        if not shutil.which("squid"):
            return "squid not installed (run bench/proxy/setup.sh; Debian package squid-openssl)"
        if not self.certgen():
            return "security_file_certgen not found (need Debian package squid-openssl, not squid)"
        if "--with-openssl" not in run(["squid", "-v"]).stdout:
            return "this squid is built without OpenSSL (install squid-openssl)"
        return None

    def version(self):
        m = re.search(r"Version (\S+)", run(["squid", "-v"]).stdout)
        return m.group(1) if m else "?"

    def prepare(self):
        self.dir = self.ctx.run_dir / "squid"
        self.dir.mkdir()
        self.ca_cert, self.ca_key = make_ca(self.dir, "squid-ca", "tlsgate bench squid bump CA")
        (self.dir / "hosts").write_text(hosts_file_text(self.ctx.names))
        self.user = None
        if os.geteuid() == 0:
            import pwd

            for u in ("proxy", "squid", "nobody"):
                try:
                    self.user = pwd.getpwnam(u)
                    break
                except KeyError:
                    continue

    def start(self):
        self.port = free_port()
        d = self.dir / f"inst.{self.port}"
        d.mkdir()
        db = d / "ssl_db"
        run([self.certgen(), "-c", "-s", str(db), "-M", "16MB"])
        conf = d / "squid.conf"
        http_port = (
            f"http_port 127.0.0.1:{self.port} ssl-bump tls-cert={self.ca_cert} tls-key={self.ca_key} "
            "generate-host-certificates=on dynamic_cert_mem_cache_size=16MB"
        )

        fd_limit = min(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        user_line = f"cache_effective_user {self.user.pw_name}\n" if self.user else ""
        conf.write_text(f"""# generated by bench/proxy/bench.py
{user_line}workers 1
{http_port}
sslcrtd_program {self.certgen()} -s {db} -M 16MB
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump stare all
ssl_bump bump all
# verify upstream against the origin's test CA (sslproxy_cafile is the old name)
tls_outgoing_options cafile={self.ctx.origin.ca_crt}
sslproxy_cert_error deny all
acl localnet src 127.0.0.1/32
http_access allow localnet
http_access deny all
cache deny all
cache_mem 0 MB
access_log none
cache_store_log none
cache_log {d}/cache.log
pid_filename {d}/squid.pid
coredump_dir {d}
hosts_file {self.dir}/hosts
dns_nameservers 127.0.0.1
via off
forwarded_for transparent
visible_hostname bench.squid
shutdown_lifetime 1 seconds
max_filedescriptors {fd_limit}
""")
        if self.user:
            for root, _dirs, files in os.walk(self.dir):
                for x in [root] + [os.path.join(root, f) for f in files]:
                    os.chown(x, self.user.pw_uid, self.user.pw_gid)
        chk = run(["squid", "-k", "parse", "-f", str(conf)], check=False)
        if chk.returncode != 0:
            raise RuntimeError("squid -k parse failed:\n" + chk.stdout + chk.stderr)
        self.log_path = d / "squid.out"
        self.proc = spawn(["squid", "-N", "-f", str(conf)], log_path=self.log_path)
        try:
            wait_port(self.port, self.proc, 30, self.log_path)
        except RuntimeError as e:
            raise RuntimeError(str(e) + tail(d / "cache.log")) from None


class Tlsgate(Target):
    name = "tlsgate"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.cmd_template = ctx.args.proxy_cmd or os.environ.get("TLSGATE_PROXY_CMD") or DEFAULT_TLSGATE_CMD
        self.cli = self._find_cli()

    def _find_cli(self) -> list[str] | None:
        env = os.environ.get("TLSGATE_BIN")
        if env:
            argv = shlex.split(env)
            return argv if argv and shutil.which(argv[0]) else None
        found = shutil.which("tlsgate")
        if found:
            return [found]
        return None

    def available(self):
        if self.cli is None:
            return (
                "`tlsgate` not found on PATH (install the package, or set TLSGATE_BIN / "
                "pass --proxy-cmd with TLSGATE_BIN)"
            )
        return None

    def version(self):
        try:
            r = run([*self.cli, "--version"], check=False, timeout=30)
            return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr).strip() else "?"
        except Exception:
            return "?"

    def prepare(self):
        self.dir = self.ctx.run_dir / "tlsgate"
        self.data_dir = self.dir / "data"
        self.data_dir.mkdir(parents=True)
        self.ca_cert = self.dir / "tlsgate-ca.pem"
        for argv in (
            [*self.cli, "--data-dir", str(self.data_dir), "ca", "init"],
            [*self.cli, "--data-dir", str(self.data_dir), "ca", "export", "--format", "pem", "-o", str(self.ca_cert)],
        ):
            r = run(argv, check=False, timeout=120)
            if r.returncode != 0:
                raise RuntimeError(f"`{shlex.join(argv)}` exited {r.returncode}:\n{r.stdout}{r.stderr}")
        if not self.ca_cert.exists():
            raise RuntimeError(f"tlsgate ca export did not write {self.ca_cert}")

    def start(self):
        self.port = free_port()
        subst = {
            "port": self.port,
            "ca_cert": self.ca_cert,
            "ca_key_dir": self.data_dir,
            "data_dir": self.data_dir,
            "upstream_ca": self.ctx.origin.ca_crt,
        }
        try:
            cmd = self.cmd_template.format(**{k: str(v) for k, v in subst.items()})
        except (KeyError, IndexError) as e:
            raise RuntimeError(
                f"bad placeholder {e} in proxy command {self.cmd_template!r}; "
                f"known: {', '.join('{' + k + '}' for k in subst)}"
            ) from None
        argv = shlex.split(cmd)
        if argv and argv[0] == "tlsgate":  # the same CLI that made the CA (TLSGATE_BIN or PATH)
            argv = [*self.cli, *argv[1:]]
        env = dict(os.environ, TLSGATE_DATA_DIR=str(self.data_dir))
        self.log_path = self.dir / f"tlsgate.{self.port}.log"
        self.cmd = cmd
        self.proc = spawn(argv, log_path=self.log_path, env=env)
        wait_port(self.port, self.proc, 30, self.log_path)


# --------------------------------------------------------------------------
# measurements
# --------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """``root`` and its live descendants (from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            stat = Path(f"/proc/{e}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(e))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


class RssSampler(threading.Thread):
    """Sample /proc for the proxy's process tree; peak = sum over every pid
    ever seen in the tree of its VmHWM (its own high-water mark)."""

    def __init__(self, root_pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.root = root_pid
        self.interval = interval
        self.hwm_kib: dict[int, int] = {}
        self.peak_rss_sum_kib = 0
        self._halt = threading.Event()

    def tree(self) -> list[int]:
        return process_tree(self.root)

    def sample(self) -> None:
        rss_sum = 0
        for pid in self.tree():
            try:
                st = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            hwm = re.search(r"^VmHWM:\s+(\d+)", st, re.M)
            rss = re.search(r"^VmRSS:\s+(\d+)", st, re.M)
            if hwm:
                self.hwm_kib[pid] = max(self.hwm_kib.get(pid, 0), int(hwm.group(1)))
            if rss:
                rss_sum += int(rss.group(1))
        self.peak_rss_sum_kib = max(self.peak_rss_sum_kib, rss_sum)

    def run(self):
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def high_water_mib(self) -> float:
        """The peak so far (sum of VmHWM), sampled now: logged after each figure to see which one sets it."""
        self.sample()
        return sum(self.hwm_kib.values()) / 1024

    def finish(self) -> dict:
        self.sample()
        self._halt.set()
        self.join(5)
        return {
            "peak_rss_mib": sum(self.hwm_kib.values()) / 1024,
            "peak_rss_sum_sampled_mib": self.peak_rss_sum_kib / 1024,
            "processes_seen": len(self.hwm_kib),
        }


HEY_RE = {
    "total_s": r"Total:\s+([\d.]+) secs",
    "rps": r"Requests/sec:\s+([\d.]+)",
    "total_bytes": r"Total data:\s+(\d+) bytes",
    "p99_s": r"99%+ in ([\d.]+) secs",
    "p50_s": r"50%+ in ([\d.]+) secs",
}


def tcp_counters() -> dict[str, int]:
    """TCP counters of this network namespace (/proc/net/snmp, /proc/net/netstat); {} if unreadable."""
    out: dict[str, int] = {}
    for path, prefix in (("/proc/net/snmp", "Tcp:"), ("/proc/net/netstat", "TcpExt:")):
        try:
            with open(path) as handle:
                rows = [line.split() for line in handle if line.startswith(prefix)]
        except OSError:
            continue
        if len(rows) >= 2 and len(rows[0]) == len(rows[1]):
            out.update(zip(rows[0][1:], (int(x) for x in rows[1][1:]), strict=True))
    return out


def _children_cpu() -> float:
    """CPU time of this process's reaped children: hey, once waited for (nothing else ends meanwhile)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def churn_note(res: dict, concurrency: int) -> str:
    """', connections churned: N TCP connections opened (M SYNs dropped at a full accept queue)'.

    With keep-alive, hey needs `concurrency` connections (and a proxy as many to the origin);
    Go's client can fall into dialling spare connections and cancelling them, and a figure
    measured in that state says more about the dial storm than about the target. The count is
    every connect() in the namespace: a proxy that dialled the origin per request would show
    here too (tlsgate, mitmproxy and Squid pool theirs).
    """
    opens, dropped = res.get("tcp_opens"), res.get("listen_overflows")
    if opens is None or opens <= 4 * concurrency:
        return ""
    dropped_note = f" ({dropped:,} SYNs dropped at a full accept queue)" if dropped is not None else ""
    return f", connections churned: {opens:,} TCP connections opened{dropped_note}"


_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int | None) -> float | None:
    """CPU time (user + system) of ``root`` and its live descendants, and of those it reaped."""
    if root is None:
        return None
    total = 0
    for pid in process_tree(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / _TICK


def cpu_note(res: dict, target: Target) -> str:
    """', CPU per response: tlsgate 57 us, origin 19 us, hey 44 us' (what each side spent)."""
    per = res.get("cpu_us_per_response") or {}
    names = (("proxy", target.name), ("origin", "origin"), ("client", "hey"))
    parts = [f"{name} {per[key]:.0f} us" for key, name in names if per.get(key) is not None]
    return ", CPU per response: " + ", ".join(parts) if parts else ""


def run_hey(ctx, target: Target, url: str, seconds: float, keepalive: bool = True) -> dict:
    argv = ["hey", "-z", f"{seconds:g}s", "-c", str(ctx.args.concurrency), "-t", "10"]
    if not keepalive:
        argv.append("-disable-keepalive")
    if target.is_proxy:
        argv += ["-x", f"http://127.0.0.1:{target.port}"]
    argv.append(url)
    before = tcp_counters()
    origin_pid = ctx.origin.proc.pid if getattr(ctx.origin, "proc", None) else None
    proxy_pid = target.proc.pid if (target.is_proxy and target.proc) else None
    cpu_before = (tree_cpu_seconds(proxy_pid), tree_cpu_seconds(origin_pid), _children_cpu())
    try:
        p = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        _procs.append(p)
        try:
            out, _ = p.communicate(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            stop(p)
            raise RuntimeError(f"hey did not finish within {seconds + 60:.0f}s") from None
        if p in _procs:
            _procs.remove(p)
    except FileNotFoundError:
        raise RuntimeError("hey not installed") from None
    after = tcp_counters()
    cpu_after = (tree_cpu_seconds(proxy_pid), tree_cpu_seconds(origin_pid), _children_cpu())
    res: dict = {}
    if "ActiveOpens" in before and "ActiveOpens" in after:
        # every connect() in the bench's namespace: hey's, and a proxy's to the origin
        res["tcp_opens"] = after["ActiveOpens"] - before["ActiveOpens"]
        if "ListenOverflows" in before and "ListenOverflows" in after:
            res["listen_overflows"] = after["ListenOverflows"] - before["ListenOverflows"]
    for k, rx in HEY_RE.items():
        m = re.search(rx, out)
        res[k] = float(m.group(1)) if m else None
    ok = sum(int(n) for n in re.findall(r"\[200\]\s+(\d+) responses", out))
    all_status = sum(int(n) for n in re.findall(r"\[\d+\]\s+(\d+) responses", out))
    err_sec = out.split("Error distribution:", 1)
    errors = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]", err_sec[1], re.M)) if len(err_sec) > 1 else 0
    res.update(ok=ok, non_200=all_status - ok, errors=errors)
    if res["rps"] is None or ok == 0:
        raise RuntimeError("hey produced no successful request:\n" + out[-2000:])
    # count only successful responses for throughput
    if res["total_s"]:
        res["ok_rps"] = ok / res["total_s"]
    # CPU per response, each side: the whole run (hey's own start and end included, ~0.1 s of 10)
    res["cpu_us_per_response"] = {
        key: (b_after - b_before) / ok * 1e6 if b_before is not None and b_after is not None else None
        for key, b_before, b_after in zip(("proxy", "origin", "client"), cpu_before, cpu_after, strict=True)
    }
    if err_sec[1:] if len(err_sec) > 1 else False:
        res["error_sample"] = err_sec[1].strip().splitlines()[:3]
    return res


def _read_http_response(sock, deadline: float) -> tuple[int, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        if time.monotonic() > deadline:
            raise TimeoutError("response header timeout")
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before end of headers: {buf[:200]!r}")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    clen = None
    chunked = False
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            clen = int(v.strip())
        elif k.strip().lower() == "transfer-encoding" and "chunked" in v.lower():
            chunked = True
    if chunked:
        while not body.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, body
    if clen is not None:
        while len(body) < clen:
            if time.monotonic() > deadline:
                raise TimeoutError("body timeout")
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed mid-body")
            body += chunk
    return status, body


def _hwm_note(sampler: RssSampler | None, res: dict, figure: str) -> str:
    """' (RSS high-water N MiB)' after a figure, also kept in the results; '' without a sampler."""
    if sampler is None:
        return ""
    mib = sampler.high_water_mib()
    res[f"rss_hwm_after_{figure}_mib"] = mib
    return f" (RSS high-water {mib:.1f} MiB)"


def first_contact(ctx, target: Target, run_no: int, n: int, budget_s: float) -> dict:
    """Sequential: for N distinct names, CONNECT (when proxied), TLS with SNI
    verified against the target's CA, GET /1k, read the full response."""
    sctx = ssl.create_default_context(cafile=str(target.ca_cert))
    # Python >= 3.13 sets VERIFY_X509_STRICT by default; measure like curl/OpenSSL
    sctx.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    port = ctx.origin.port
    authority_port = "" if port == 443 else f":{port}"
    times = []
    start_all = time.monotonic()
    hard_deadline = start_all + budget_s
    for i in range(n):
        if time.monotonic() > hard_deadline:
            break
        host = fc_name(run_no, i)
        t0 = time.perf_counter()
        deadline = time.monotonic() + 15
        connect_to = ("127.0.0.1", target.port) if target.is_proxy else ("127.0.0.1", port)
        with socket.create_connection(connect_to, timeout=15) as raw:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if target.is_proxy:
                raw.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
                buf = b""
                while b"\r\n\r\n" not in buf:
                    chunk = raw.recv(4096)
                    if not chunk:
                        raise ConnectionError(f"{host}: proxy closed during CONNECT")
                    buf += chunk
                code = int(buf.split(b" ", 2)[1])
                if code != 200:
                    raise RuntimeError(f"{host}: CONNECT answered {code}")
            with sctx.wrap_socket(raw, server_hostname=host) as tls:
                tls.sendall(
                    f"GET /1k HTTP/1.1\r\nHost: {host}{authority_port}\r\nUser-Agent: bench-first-contact\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                status, body = _read_http_response(tls, deadline)
        if status != 200 or len(body) != SIZES["1k"]:
            raise RuntimeError(f"{host}: got HTTP {status} with {len(body)} bytes")
        times.append(time.perf_counter() - t0)
    if not times:
        raise RuntimeError("first contact: no host completed")
    total = sum(times)
    return {
        "first_contact_ms": total / len(times) * 1000,
        "hosts": len(times),
        "hosts_requested": n,
        "first_contact_median_ms": statistics.median(times) * 1000,
        "first_contact_max_ms": max(times) * 1000,
    }


def curl_check(ctx, target: Target, port: int, proxy_ca: Path) -> tuple[bool, str]:
    argv = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "15", "--cacert", str(proxy_ca)]
    if target.is_proxy:
        argv += ["--proxy", f"http://127.0.0.1:{target.port}"]
    argv.append(ctx.origin.url(LOAD_HOST, "1k", port))
    r = run(argv, check=False, timeout=30)
    code = r.stdout.strip()
    return (r.returncode == 0 and code == "200"), f"curl rc={r.returncode} http={code} {r.stderr.strip()}"


# --------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------


class Ctx:
    pass


def background_cpu(window: float = 1.0) -> float:
    """Fraction of all CPUs busy over `window` seconds while this harness is
    idle (origin up, no load running): other work on the machine."""

    def snap():
        vals = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(vals), vals[3] + (vals[4] if len(vals) > 4 else 0)

    try:
        t0, i0 = snap()
        time.sleep(window)
        t1, i1 = snap()
        return max(0.0, 1 - (i1 - i0) / max(1, t1 - t0))
    except (OSError, ValueError, IndexError):
        return -1.0


def measure_once(ctx, target: Target, run_no: int, res: dict) -> dict:
    """Fills `res` as it goes, so a failure keeps what was measured."""
    a = ctx.args
    bg = background_cpu()
    waited = 0.0
    while bg > 0.15 and waited < a.wait_idle:
        if waited == 0:
            log(
                f"  [{target.name}] machine busy ({bg:.0%} CPU used by other work); waiting up to "
                f"{a.wait_idle:g}s for it to calm down"
            )
        bg = background_cpu(2.0)
        waited += 2.0
    res["background_cpu"] = bg
    if bg > 0.15:
        log(
            f"  [{target.name}] WARNING: {bg:.0%} of the CPUs were busy with other work just before this run; "
            "these numbers are noisy"
        )
    target.start()
    sampler = RssSampler(target.proc.pid) if (target.is_proxy and target.proc) else None
    if sampler:
        sampler.start()
    try:
        ok, detail = curl_check(ctx, target, ctx.origin.port, target.ca_cert)
        if not ok:
            res["verified"] = False
            raise RuntimeError(f"verified request through {target.name} FAILED ({detail})")
        res["verified"] = True
        log(f"  [{target.name}] verified: yes (curl --cacert {target.ca_cert.name} -> 200)")
        if target.is_proxy:
            bad_ok, _bad_detail = curl_check(ctx, target, ctx.origin.bad_port, target.ca_cert)
            res["upstream_verification"] = not bad_ok
            log(
                f"  [{target.name}] upstream verification: "
                + ("yes (untrusted origin refused)" if not bad_ok else "NO - untrusted origin was served!")
            )
        fc = first_contact(ctx, target, run_no, a.hosts, a.fc_budget)
        res.update(fc)
        log(
            f"  [{target.name}] first contact: {fc['first_contact_ms']:.2f} ms/host over {fc['hosts']} hosts"
            + _hwm_note(sampler, res, "first_contact")
        )
        url1k = ctx.origin.url(LOAD_HOST, "1k")
        run_hey(ctx, target, url1k, a.warmup)  # warm-up, discarded
        h = run_hey(ctx, target, url1k, a.duration)
        res.update(
            ka_1k_rps=h["ok_rps"],
            ka_1k_p99_ms=h["p99_s"] * 1000 if h["p99_s"] else None,
            ka_1k_errors=h["errors"] + h["non_200"],
            ka_1k_tcp_opens=h.get("tcp_opens"),
            ka_1k_listen_overflows=h.get("listen_overflows"),
            ka_1k_cpu_us_per_response=h["cpu_us_per_response"],
            ka_1k_proxy_cpu_us=h["cpu_us_per_response"]["proxy"],
        )
        log(
            f"  [{target.name}] keep-alive 1k: {h['ok_rps']:,.0f} req/s, p99 {res['ka_1k_p99_ms']:.2f} ms"
            + (f", {res['ka_1k_errors']} errors" if res["ka_1k_errors"] else "")
            + churn_note(h, a.concurrency)
            + cpu_note(h, target)
            + _hwm_note(sampler, res, "ka_1k")
        )
        time.sleep(a.pause)
        h = run_hey(ctx, target, url1k, a.duration, keepalive=False)
        res.update(
            newconn_rps=h["ok_rps"],
            newconn_p99_ms=h["p99_s"] * 1000 if h["p99_s"] else None,
            newconn_errors=h["errors"] + h["non_200"],
            newconn_cpu_us_per_response=h["cpu_us_per_response"],
            newconn_proxy_cpu_us=h["cpu_us_per_response"]["proxy"],
        )
        log(
            f"  [{target.name}] new conn/request: {h['ok_rps']:,.0f} req/s"
            + (f", {res['newconn_errors']} errors" if res["newconn_errors"] else "")
            + cpu_note(h, target)
            + _hwm_note(sampler, res, "newconn")
        )
        time.sleep(a.pause)
        h = run_hey(ctx, target, ctx.origin.url(LOAD_HOST, "100k"), a.duration)
        mbps = h["ok"] * SIZES["100k"] / h["total_s"] / 1e6
        res.update(
            large_100k_mbps=mbps,
            large_100k_rps=h["ok_rps"],
            large_100k_errors=h["errors"] + h["non_200"],
            large_100k_tcp_opens=h.get("tcp_opens"),
            large_100k_listen_overflows=h.get("listen_overflows"),
            large_100k_cpu_us_per_response=h["cpu_us_per_response"],
            large_100k_proxy_cpu_us=h["cpu_us_per_response"]["proxy"],
        )
        log(
            f"  [{target.name}] 100 KiB: {mbps:,.1f} MB/s ({h['ok_rps']:,.0f} req/s)"
            + (f", {res['large_100k_errors']} errors" if res["large_100k_errors"] else "")
            + churn_note(h, a.concurrency)
            + cpu_note(h, target)
            + _hwm_note(sampler, res, "large_100k")
        )
        if sampler:
            res.update(sampler.finish())
            sampler = None
            log(f"  [{target.name}] peak RSS (sum VmHWM, {res['processes_seen']} procs): {res['peak_rss_mib']:.1f} MiB")
    finally:
        if sampler:
            sampler.finish()
        target.stop()
    return res


def median_of(runs: list[dict], key: str):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def print_tables(results: dict, order: list[str]) -> None:
    cols = order
    header = ["figure", *cols]
    rows = []
    for key, label, unit, _hib in FIGURES:
        row = [f"{label} ({unit})"]
        for t in cols:
            tr = results[t]
            if tr["status"] != "ok":
                row.append(tr["status"])
            elif (key == "peak_rss_mib" or key.endswith("_proxy_cpu_us")) and t == "direct":
                row.append("n/a")
            else:
                row.append(fmt_num(tr["median"].get(key), key))
        rows.append(row)
    row = ["verified (curl through target)"]
    for t in cols:
        tr = results[t]
        v = tr.get("verified")
        row.append("-" if v is None else ("yes" if v else "NO"))
    rows.append(row)
    row = ["upstream verification"]
    for t in cols:
        tr = results[t]
        uv = tr.get("upstream_verification")
        row.append("n/a" if t == "direct" else ("-" if uv is None else ("yes" if uv else "NO")))
    rows.append(row)

    ratio_rows = []
    peers = [t for t in cols if t != "tlsgate"]
    tg = results.get("tlsgate")
    for key, label, unit, hib in FIGURES:
        r = [f"{label} ({unit}, {'higher' if hib else 'lower'} is better)"]
        for p in peers:
            r.append(fmt_ratio(tg, results[p], key))
        ratio_rows.append(r)

    try:
        if os.environ.get("BENCH_PLAIN"):
            raise ImportError
        from rich.console import Console
        from rich.table import Table

        con = Console()
        t = Table(title="medians per target")
        for i, h in enumerate(header):
            t.add_column(h, justify="left" if i == 0 else "right")
        for r in rows:
            t.add_row(*r)
        con.print(t)
        t2 = Table(title="ratio tlsgate / peer")
        for i, h in enumerate(["figure"] + [f"tlsgate/{p}" for p in peers]):
            t2.add_column(h, justify="left" if i == 0 else "right")
        for r in ratio_rows:
            t2.add_row(*r)
        con.print(t2)
    except ImportError:
        log("\nmedians per target")
        log(plain_table(header, rows))
        log("\nratio tlsgate / peer")
        log(plain_table(["figure"] + [f"tlsgate/{p}" for p in peers], ratio_rows))


def fmt_ratio(tg: dict | None, peer: dict, key: str) -> str:
    if not tg or tg["status"] != "ok" or peer["status"] != "ok":
        return "-"
    a, b = tg["median"].get(key), peer["median"].get(key)
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def ratios(results: dict) -> dict:
    tg = results.get("tlsgate")
    out = {}
    for p in results:
        if p == "tlsgate":
            continue
        d = {}
        for key, *_ in FIGURES:
            s = fmt_ratio(tg, results[p], key)
            d[key] = float(s[:-1]) if s != "-" else None
        out[f"tlsgate/{p}"] = d
    return out


def plain_table(header: list[str], rows: list[list[str]]) -> str:
    w = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    sep = "  "
    lines = [
        sep.join(h.ljust(w[i]) if i == 0 else h.rjust(w[i]) for i, h in enumerate(header)),
        sep.join("-" * x for x in w),
    ]
    for r in rows:
        lines.append(sep.join(str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i]) for i, c in enumerate(r)))
    return "\n".join(lines)


def tool_versions() -> dict:
    v = {"python": platform.python_version()}
    try:
        v["nginx"] = run(["nginx", "-v"]).stderr.strip().split("/")[-1]
    except Exception:
        v["nginx"] = "?"
    try:
        v["hey"] = run(["dpkg-query", "-W", "-f", "${Version}", "hey"]).stdout.strip()
    except Exception:
        v["hey"] = "?"
    try:
        v["openssl"] = run(["openssl", "version"]).stdout.strip()
    except Exception:
        v["openssl"] = "?"
    return v


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--proxy-cmd",
        help="tlsgate command template; placeholders {port} {ca_cert} {ca_key_dir} "
        f"{{data_dir}} {{upstream_ca}} (default: env TLSGATE_PROXY_CMD or {DEFAULT_TLSGATE_CMD!r})",
    )
    ap.add_argument("--runs", type=int, default=3, help="runs per target; medians are reported (default 3)")
    ap.add_argument("--quick", action="store_true", help="smoke mode: 2 s per load figure, 100 hosts, 1 run")
    ap.add_argument("--duration", type=float, help="seconds per hey figure (default 10, quick 2)")
    ap.add_argument("--concurrency", type=int, default=50, help="hey clients (default 50)")
    ap.add_argument("--hosts", type=int, help="distinct host names for first contact (default 500, quick 100)")
    ap.add_argument("--targets", default=",".join(ALL_TARGETS), help="comma list out of " + ",".join(ALL_TARGETS))
    ap.add_argument(
        "--wait-idle",
        type=float,
        help="before each target run, wait up to this many seconds while "
        "other work keeps >15%% of the CPUs busy (default 60, quick 0)",
    )
    ap.add_argument("--json", type=Path, default=RESULTS / "latest.json", help="result file")
    a = ap.parse_args(argv)
    if a.runs < 1:
        ap.error("--runs must be >= 1")
    if a.quick and "--runs" not in " ".join(argv):
        a.runs = 1
    a.duration = a.duration or (2.0 if a.quick else 10.0)
    a.warmup = 0.5 if a.quick else 1.0
    a.pause = 0.5 if a.quick else 1.0
    a.hosts = a.hosts or (100 if a.quick else 500)
    if a.wait_idle is None:
        a.wait_idle = 0.0 if a.quick else 60.0
    a.fc_budget = 30.0 if a.quick else 120.0
    a.targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    bad = [t for t in a.targets if t not in ALL_TARGETS]
    if bad:
        ap.error(f"unknown target(s): {bad}")
    return a


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    maybe_reexec_in_namespace(argv)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)
    atexit.register(cleanup_all)

    for tool in ("nginx", "hey", "curl", "openssl"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: run `bash bench/proxy/setup.sh` first")

    ctx = Ctx()
    ctx.args = args
    ctx.names = host_names(args.runs, args.hosts)
    started = _dt.datetime.now(_dt.UTC)
    resolution = setup_resolution(ctx.names)
    if RUN_DIR.exists():
        shutil.rmtree(RUN_DIR)
    RUN_DIR.mkdir(parents=True)
    ctx.run_dir = RUN_DIR
    log(
        f"tlsgate proxy benchmark: mode={'quick' if args.quick else 'full'} runs={args.runs} "
        f"duration={args.duration:g}s/figure concurrency={args.concurrency} hosts={args.hosts} cpus={os.cpu_count()}"
    )
    log(f"name resolution: {resolution}")

    ctx.origin = Origin(RUN_DIR / "origin")
    ctx.origin.start()
    log(
        f"origin: nginx on 127.0.0.1:{ctx.origin.port} (untrusted twin on :{ctx.origin.bad_port}), "
        f"URLs like {ctx.origin.url(LOAD_HOST, '1k')}"
    )

    classes = {"direct": Direct, "tlsgate": Tlsgate, "mitmproxy": Mitmproxy, "squid": Squid}
    targets: dict[str, Target] = {}
    results: dict[str, dict] = {}
    versions = tool_versions()
    for name in args.targets:
        t = classes[name](ctx)
        results[name] = {"status": "ok", "runs": [], "notes": []}
        why = t.available()
        if why:
            results[name].update(status="skipped", reason=why)
            log(f"{name}: SKIPPED - {why}")
            continue
        try:
            t.prepare()
        except Exception as e:
            results[name].update(status="FAILED", reason=f"prepare: {e}")
            log(f"{name}: FAILED during prepare - {e}")
            continue
        if name != "direct":
            versions[name] = t.version()
            log(f"{name}: {versions[name]}")
        if name == "tlsgate":
            results[name]["command_template"] = t.cmd_template
        targets[name] = t

    for run_no in range(1, args.runs + 1):
        for name, t in targets.items():
            if results[name]["status"] != "ok":
                continue
            log(f"\n[run {run_no}/{args.runs}] {name}")
            r: dict = {}
            try:
                measure_once(ctx, t, run_no, r)
                results[name]["runs"].append(r)
            except Exception as e:
                results[name].update(status="FAILED", reason=str(e), failed_run=r)
                log(f"!!! {name}: FAILED - {e}" + ("" if "\n  | " in str(e) else tail(t.log_path)))
            finally:
                if "verified" in r:
                    results[name]["verified"] = r["verified"] and results[name].get("verified", True)
                if "upstream_verification" in r:
                    prev = results[name].get("upstream_verification", True)
                    results[name]["upstream_verification"] = prev and r["upstream_verification"]

    for name, r in results.items():
        if r["status"] == "ok":
            keys = {
                k
                for run in r["runs"]
                for k, v in run.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            }
            r["median"] = {k: median_of(r["runs"], k) for k in sorted(keys)}
            if name == "direct":
                r["median"].pop("peak_rss_mib", None)
            bg = max((run.get("background_cpu") or 0) for run in r["runs"]) if r["runs"] else 0
            if bg > 0.15:
                r["notes"].append(f"up to {bg:.0%} of the CPUs were busy with other work before a run: noisy")
            errs = sum(r["median"].get(k) or 0 for k in ("ka_1k_errors", "newconn_errors", "large_100k_errors"))
            if errs:
                r["notes"].append(f"median error/non-200 count across figures: {errs:g}")

    log("")
    order = [t for t in ALL_TARGETS if t in results]
    print_tables(results, order)
    for name, r in results.items():
        if r["status"] != "ok":
            log(f"{name}: {r['status']} - {r.get('reason', '')}")
        for n in r.get("notes", []):
            log(f"{name}: note: {n}")

    finished = _dt.datetime.now(_dt.UTC)
    doc = {
        "schema": 1,
        "mode": "quick" if args.quick else "full",
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "kernel": platform.release(), "machine": platform.machine()},
        "params": {
            "runs": args.runs,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.concurrency,
            "first_contact_hosts": args.hosts,
            "body_sizes": SIZES,
            "name_resolution": resolution,
        },
        "versions": versions,
        "figures": {k: {"label": lbl, "unit": u, "higher_is_better": hib} for k, lbl, u, hib in FIGURES},
        "targets": results,
        "ratios": ratios(results),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    log(f"\nresults written to {args.json}")
    failed = [n for n, r in results.items() if r["status"] == "FAILED"]
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        rc = main(sys.argv[1:])
    finally:
        cleanup_all()
    sys.exit(rc)
