#!/usr/bin/env bash
# Side-by-side benchmark: direct origin vs tlsgate vs mitmproxy vs squid.
#   bash bench/proxy/run.sh [--proxy-cmd CMD] [--runs 3] [--quick] [--targets direct,squid] ...
# See bench/proxy/README.md. Everything it starts is stopped on exit.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"

missing=0
for t in nginx squid hey curl openssl; do
  command -v "$t" >/dev/null 2>&1 || missing=1
done
[ -x /usr/lib/squid/security_file_certgen ] || missing=1
[ -x "$HERE/.work/mitmproxy-venv/bin/mitmdump" ] || missing=1
if [ "$missing" = 1 ]; then
  echo "run.sh: prerequisites missing, running setup.sh" >&2
  bash "$HERE/setup.sh"
fi

# tlsgate: the CLI in TLSGATE_BIN as it is; else this checkout, built as scripts/run builds it
# (.venv, and the compiled proxy core on PYTHONPATH). The table's versions line names the build.
if [ -z "${TLSGATE_BIN:-}" ]; then
  ROOT="$(cd "$HERE/../.." && pwd)"
  (cd "$ROOT" && source scripts/lib.sh && make_venv "." && build_native build/native) >&2
  export TLSGATE_BIN="$ROOT/.venv/bin/tlsgate" PYTHONPATH="$ROOT/build/native${PYTHONPATH:+:$PYTHONPATH}"
fi

exec "$PY" "$HERE/bench.py" "$@"
