#!/usr/bin/env bash
# Installs, idempotently, the peers bench/run.py compares imapguard with on
# Debian 12 (bookworm): HAProxy 2.6 and nginx 1.22 with its mail module.
# (The build needs of the load generator, libssl-dev, come with
# scripts/install-deps.sh.)
#
# The packages start their system services on installation (nginx on port
# 80). The benchmark runs private instances with their own configurations
# on loopback ports, so the system services are kept from starting during
# the installation (a temporary policy-rc.d, unless one is already there),
# stopped if they run anyway, and disabled.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

PKGS=(haproxy nginx libnginx-mod-mail)
SERVICES=(haproxy nginx)

have_pkgs() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
  done
}

if ! have_pkgs "${PKGS[@]}"; then
  echo "bench/install-deps: installing ${PKGS[*]}" >&2
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    # invoke-rc.d asks this before starting a service: 101 = not now.
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 0755 "$policy"
    trap '$SUDO rm -f "$policy"' EXIT
  fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
fi

# Whatever started them, the system services must not hold ports or run
# beside the benchmark's private instances.
for svc in "${SERVICES[@]}"; do
  if [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  else
    $SUDO service "$svc" stop >/dev/null 2>&1 || true
    $SUDO update-rc.d "$svc" disable >/dev/null 2>&1 || true
  fi
done

echo "bench/install-deps: $(haproxy -v | head -1 | cut -d' ' -f1-3)," \
  "$(nginx -v 2>&1 | cut -d' ' -f3), mail module" \
  "$(dpkg-query -W -f='${Version}' libnginx-mod-mail)" >&2
