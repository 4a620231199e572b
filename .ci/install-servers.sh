#!/usr/bin/env bash
# Install the servers the deployment tests start themselves:
#   nginx, docker-compose, chromium + chromium-driver, redis-server   Debian packages
#   Milvus standalone       PyPI `milvus` 2.3.5 in its own venv (LOOKALIKE_MILVUS_VENV)
# (s3rver comes from npm in .ci/run.) Idempotent. What cannot be installed is
# reported and its tests skip, saying how to install it.
set -uo pipefail

MILVUS_VENV=${LOOKALIKE_MILVUS_VENV:-/opt/milvus-venv}
MILVUS_VERSION=2.3.5
PYTHON=${PYTHON:-python3}

warn() { echo "install-servers: $*" >&2; }

sudo_if_needed() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

packages=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || packages+=(nginx)
command -v docker-compose >/dev/null || packages+=(docker-compose)
# Headless Chromium for the admin browser test (tests/test_admin_browser.py).
command -v chromium >/dev/null || packages+=(chromium)
command -v chromedriver >/dev/null || packages+=(chromium-driver)
# Redis for the several-web-servers tests (tests/test_coordination*.py).
command -v redis-server >/dev/null || packages+=(redis-server)
if [ ${#packages[@]} -gt 0 ]; then
  # Keep Debian from starting the packaged nginx as a service on port 80 of
  # every interface: the tests run their own, on 127.0.0.1.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | sudo_if_needed tee "$policy" >/dev/null && sudo_if_needed chmod +x "$policy"
    trap 'sudo_if_needed rm -f "$policy"' EXIT
  fi
  if sudo_if_needed apt-get update -qq \
     && DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null; then
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      sudo_if_needed systemctl disable --now nginx >/dev/null 2>&1 || true
      sudo_if_needed systemctl disable --now redis-server >/dev/null 2>&1 || true
    fi
  else
    warn "could not install ${packages[*]}; the nginx and compose tests will skip"
  fi
fi

if [ ! -x "$MILVUS_VENV/bin/milvus-server" ]; then
  if ! { "$PYTHON" -m venv "$MILVUS_VENV" \
         && "$MILVUS_VENV/bin/pip" install --quiet --disable-pip-version-check "milvus==$MILVUS_VERSION"; }; then
    warn "could not install milvus==$MILVUS_VERSION in $MILVUS_VENV; the Milvus server tests will skip"
  fi
fi
if [ -x "$MILVUS_VENV/bin/milvus-server" ]; then
  # Unpack the server's binaries once (tests/servers.py links them into each data folder).
  "$MILVUS_VENV/bin/python" -c 'import sys, milvus; milvus._initialize_data_files(sys.argv[1])' \
    "$MILVUS_VENV/milvus-home" || warn "could not unpack the Milvus binaries (tests will)"
fi

nginx -v 2>&1 | sed 's/^/install-servers: /' >&2 || true
docker-compose version --short 2>/dev/null | sed 's/^/install-servers: docker-compose /' >&2 || true
[ -x "$MILVUS_VENV/bin/milvus-server" ] && warn "milvus-server $MILVUS_VERSION at $MILVUS_VENV"
exit 0
