#!/usr/bin/env bash
# Installs what Kennel's tests use that cargo does not fetch, on Debian 12
# (bookworm). Idempotent: it checks each thing first and installs only what
# is missing, so on a ready machine it changes nothing and needs no network.
# Run as root, or as a user who may sudo (apt, and creating the Python 2
# directory). Needs no network but the package registries: Debian's mirror
# (bookworm and bullseye) and PyPI.
#
#   bash tests/setup.sh && cargo test --workspace --locked
#
# What and why:
#   mongrel2-core     mongrel2 and m2sh (the differential test's oracle and
#                     config tool) and the config.sql of its Python library
#   sqlite3, curl     the shell tools the docs and examples use
#   chromium, chromium-driver
#                     a real browser for browser tests
#   pyzmq (python3)   the Python example handler's test (pip)
#   python2.7         Mongrel2's own Python 2 handler library; Debian 12 has
#                     none, so it comes from bullseye, pinned low (priority
#                     100) so that nothing else is taken from bullseye
#   pyzmq 19.0.2 (python 2)
#                     the last pyzmq with Python 2 wheels, installed with the
#                     last pip for Python 2 (20.3.4) into $KENNEL_PY2_PATH
#                     (default /opt/kennel-test/py2): run Python 2 code that
#                     needs it as
#                       PYTHONPATH=/opt/kennel-test/py2 /usr/bin/python2.7 ...
set -euo pipefail

py2_path=${KENNEL_PY2_PATH:-/opt/kennel-test/py2}
python2=/usr/bin/python2.7
pyzmq2=19.0.2
pip2=20.3.4
python_config_sql=/usr/share/doc/mongrel2-core/examples/python/mongrel2/sql/config.sql
apt_etc=/etc/apt
bullseye_list=$apt_etc/sources.list.d/kennel-bullseye.list
bullseye_pin=$apt_etc/preferences.d/kennel-bullseye

say() { printf 'tests/setup.sh: %s\n' "$*"; }

if [ "$(id -u)" = 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  as_root=(false)
fi
root() {
  if [ "${as_root[0]:-}" = false ]; then
    say "need root for: $* (run as root, or install sudo)" >&2
    exit 1
  fi
  "${as_root[@]}" "$@"
}

have() { command -v "$1" >/dev/null 2>&1; }

# ---- Debian packages --------------------------------------------------------

apt_packages=()
{ have mongrel2 && have m2sh && [ -f "$python_config_sql" ]; } || apt_packages+=(mongrel2-core)
have sqlite3 || apt_packages+=(sqlite3)
have curl || apt_packages+=(curl)
have openssl || apt_packages+=(openssl)
have chromium || apt_packages+=(chromium)
have chromedriver || apt_packages+=(chromium-driver)
have python3 || apt_packages+=(python3)
# pip for python3: to install pyzmq, and to fetch the Python 2 wheels.
python3_zmq() { python3 -c 'import zmq' >/dev/null 2>&1; }
python2_zmq() {
  PYTHONPATH=$py2_path "$python2" -c "import zmq, sys; sys.exit(zmq.__version__ != '$pyzmq2')" \
    >/dev/null 2>&1
}
if ! { have python3 && python3 -m pip --version >/dev/null 2>&1; }; then
  if ! python3_zmq || ! python2_zmq; then
    apt_packages+=(python3-pip)
  fi
fi

if [ ! -x "$python2" ]; then
  # python2.7 from bullseye, pinned low: written only if no source or pin
  # for bullseye exists yet.
  if ! grep -rqsE '^[^#]*bullseye' "$apt_etc/sources.list" "$apt_etc/sources.list.d"; then
    say "adding Debian bullseye to apt's sources ($bullseye_list)"
    echo 'deb http://deb.debian.org/debian bullseye main' | root tee "$bullseye_list" >/dev/null
  fi
  if ! grep -rqsE '^[^#]*n=bullseye' "$apt_etc/preferences" "$apt_etc/preferences.d"; then
    say "pinning bullseye low ($bullseye_pin)"
    printf 'Package: *\nPin: release n=bullseye\nPin-Priority: 100\n' |
      root tee "$bullseye_pin" >/dev/null
  fi
  apt_packages+=(python2.7)
fi

if [ ${#apt_packages[@]} -gt 0 ]; then
  say "installing Debian packages: ${apt_packages[*]}"
  root apt-get update -qq
  root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${apt_packages[@]}"
fi

# ---- pyzmq for python3 ------------------------------------------------------

if ! python3_zmq; then
  say "installing pyzmq for python3 (pip)"
  # Debian's own python3 refuses pip installs outside a venv (PEP 668);
  # then install for this user only.
  python3 -m pip install --quiet pyzmq ||
    python3 -m pip install --quiet --user --break-system-packages pyzmq
fi

# ---- pyzmq 19.0.2 for Python 2 ----------------------------------------------

if ! python2_zmq; then
  say "installing pyzmq $pyzmq2 for Python 2 into $py2_path"
  if ! mkdir -p "$py2_path" 2>/dev/null; then
    root install -d -o "$(id -u)" -g "$(id -g)" "$py2_path"
  fi
  wheels=$(mktemp -d)
  trap 'rm -rf "$wheels"' EXIT
  # python3's pip fetches the wheels for Python 2 (the pip wheel runs
  # straight from its file); Python 2's pip then installs offline.
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 2.7 --implementation cp --abi cp27mu \
    --platform "manylinux1_$(uname -m)" --dest "$wheels" \
    "pip==$pip2" "pyzmq==$pyzmq2"
  "$python2" "$wheels/pip-$pip2-py2.py3-none-any.whl/pip" install --quiet \
    --disable-pip-version-check --no-warn-script-location --no-index \
    --find-links "$wheels" --target "$py2_path" --upgrade "pyzmq==$pyzmq2" 2>&1 |
    { grep -v '^DEPRECATION: Python 2.7' || true; }
fi

# ---- everything there? ------------------------------------------------------

missing=()
for program in mongrel2 m2sh sqlite3 curl chromium chromedriver python3; do
  have "$program" || missing+=("$program")
done
[ -f "$python_config_sql" ] || missing+=("$python_config_sql")
python3_zmq || missing+=("pyzmq for python3")
[ -x "$python2" ] || missing+=("$python2")
python2_zmq || missing+=("pyzmq $pyzmq2 for Python 2 in $py2_path")
if [ ${#missing[@]} -gt 0 ]; then
  say "still missing: ${missing[*]}" >&2
  exit 1
fi
say "ready"
