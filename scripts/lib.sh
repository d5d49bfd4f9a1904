# Shared by scripts/run and scripts/test: Debian packages and the project's virtual environment.
# Sourced, not run. Works on a fresh Debian 12 (Python 3.11) as root or with sudo.

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "tlsgate: need root (or sudo) to install: $*" >&2; return 1; fi
}

# apt_install PKG...: installs the Debian packages that are missing (apt-get update first, once).
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# python_for_venv: a Python >= 3.11 that can make a virtual environment.
python_for_venv() {
  local py="${TLSGATE_PYTHON:-python3}"
  if ! command -v "$py" >/dev/null; then apt_install python3 python3-venv; fi
  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "tlsgate: needs Python 3.11 or newer ($py is $("$py" -V 2>&1))" >&2; return 1
  fi
  # Debian's python3 needs python3-venv for ensurepip; pyenv and other builds carry it.
  if ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then apt_install python3-venv; fi
  echo "$py"
}

# make_venv EXTRAS: .venv with tlsgate installed (editable) with the given extras, e.g. ".[test]".
make_venv() {
  local spec="$1" py
  py=$(python_for_venv)
  if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $("$py" -V)"
    "$py" -m venv .venv
  fi
  echo "==> installing tlsgate $spec into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec"
}

# build_native DIR: the compiled build (setup.py with TLSGATE_COMPILE=1: mypyc turns the proxy's
# per-request modules into C extensions) installed into DIR, to be put first on PYTHONPATH. It
# needs .venv (make_venv), a C compiler and Python's headers; it replaces DIR only when it worked.
build_native() {
  local dir="$1" include
  include=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  command -v cc >/dev/null || apt_install gcc libc6-dev
  [ -f "$include/Python.h" ] || apt_install python3-dev
  echo "==> compiling the proxy's per-request modules (mypyc) into $dir"
  .venv/bin/python -m pip install -q --disable-pip-version-check "setuptools>=77" "mypy>=1.11"
  rm -rf "$dir.new"
  TLSGATE_COMPILE=1 .venv/bin/python -m pip install -q --disable-pip-version-check \
    --no-build-isolation --no-deps --target "$dir.new" . >/dev/null
  PYTHONPATH="$dir.new" .venv/bin/python -c 'import sys, tlsgate.compiled as c; sys.exit(not c.compiled())' || {
    echo "tlsgate: the compiled build in $dir.new did not load" >&2; return 1; }
  rm -rf "$dir" && mv "$dir.new" "$dir"
}
