#!/usr/bin/env bash
# imapguard's main job on a fresh Debian 12 machine, non-interactively:
# install dependencies, build, generate dev certificates into ./demo-run/certs,
# start a private Dovecot and imapguard on loopback ports, and run a real
# client session that shows cleartext LOGIN refused (PRIVACYREQUIRED,
# LOGINDISABLED), STARTTLS then login, a wrong password refused, and implicit
# TLS login + SELECT + APPEND + FETCH; then imapguard's log for it. Everything
# started is stopped on exit (scripts/demo.py cleans up; the trap forwards
# signals to it).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

echo "== building imapguard (build/plain)"
cmake -S . -B build/plain -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/plain -j"$(nproc 2>/dev/null || echo 2)" >/dev/null

demo_pid=""
cleanup() {
  if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
    kill -TERM "$demo_pid" 2>/dev/null || true
    wait "$demo_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Debian's python3 (/usr/bin/python3), not one from PATH.
/usr/bin/python3 scripts/demo.py --bin build/plain/imapguard --run-dir demo-run &
demo_pid=$!
status=0
wait "$demo_pid" || status=$?
demo_pid=""
exit "$status"
