#!/usr/bin/env bash
# Install what bench/proxy/run.sh needs: Debian packages (as root) and a
# private mitmproxy virtualenv under bench/proxy/.work/ (gitignored).
# Idempotent; safe to re-run.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$HERE/.work"
PY="${PYTHON:-python3}"
MITMPROXY_SPEC="${MITMPROXY_SPEC:-mitmproxy}"   # e.g. MITMPROXY_SPEC='mitmproxy==11.0.2'

need_apt=0
for t in nginx squid hey curl openssl unshare; do
  command -v "$t" >/dev/null 2>&1 || need_apt=1
done
[ -x /usr/lib/squid/security_file_certgen ] || need_apt=1

if [ "$need_apt" = 1 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: need root for apt-get (missing nginx/squid-openssl/hey/curl/openssl)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  nginx_pkg=nginx-light
  apt-cache show nginx-light >/dev/null 2>&1 || nginx_pkg=nginx
  # squid-openssl provides ssl-bump and security_file_certgen (plain squid does not)
  apt-get install -y --no-install-recommends "$nginx_pkg" squid-openssl hey curl openssl ca-certificates util-linux
fi

if [ ! -x "$WORK/mitmproxy-venv/bin/mitmdump" ]; then
  mkdir -p "$WORK"
  if ! "$PY" -m venv "$WORK/mitmproxy-venv" 2>/dev/null; then
    rm -rf "$WORK/mitmproxy-venv"
    if [ "$(id -u)" = 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv
    fi
    "$PY" -m venv "$WORK/mitmproxy-venv"
  fi
  "$WORK/mitmproxy-venv/bin/pip" install --quiet --upgrade pip
  "$WORK/mitmproxy-venv/bin/pip" install --quiet "$MITMPROXY_SPEC"
fi

echo "setup.sh: ok"
echo "  nginx:     $(nginx -v 2>&1 | sed 's/.*\///')"
echo "  squid:     $(squid -v | sed -n 's/.*Version //p')"
echo "  hey:       $(dpkg-query -W -f '${Version}' hey 2>/dev/null || echo '?')"
echo "  mitmproxy: $("$WORK/mitmproxy-venv/bin/mitmdump" --version 2>/dev/null | sed -n 's/^Mitmproxy: //p')"
