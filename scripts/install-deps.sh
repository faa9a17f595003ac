#!/usr/bin/env bash
# Installs, idempotently, everything imapguard's build, demo and tests need on
# Debian 12 (bookworm).
#
# Debian 12 ships mbedTLS 2.28 (end of life, no TLS 1.3). We take the four
# mbedTLS 3.6 LTS packages from Debian 13 "trixie" with `apt-get download`
# against a private sources list and a private state directory, then install
# them with `dpkg -i`. Trixie is never added to the system's sources.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

BOOKWORM_PKGS=(
  cmake make gcc clang pkg-config git ca-certificates
  # clang's sanitizer and libFuzzer runtimes (a Recommends of clang-14)
  libclang-rt-14-dev
  libuv1-dev libyaml-dev libcmocka-dev
  dovecot-imapd
  python3 python3-pytest
  curl openssl
  # the benchmark's load generator (bench/ig_loadgen) uses OpenSSL as its client
  libssl-dev
  # real IMAP clients driven by tests/integration/test_clients.py
  fetchmail isync getmail6 offlineimap3 imapfilter mailutils mutt neomutt
  # isync (mbsync) takes its SASL mechanisms from the Cyrus SASL plugins,
  # a Recommends that --no-install-recommends skips
  libsasl2-modules
)
MBEDTLS_PKGS=(libmbedtls-dev libmbedcrypto16 libmbedtls21 libmbedx509-7)
MBEDTLS_MIN=3.6.0

have_pkgs() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
  done
}

mbedtls_ok() {
  have_pkgs "${MBEDTLS_PKGS[@]}" || return 1
  local v
  v=$(dpkg-query -W -f='${Version}' libmbedtls-dev)
  dpkg --compare-versions "$v" ge "$MBEDTLS_MIN"
}

if ! have_pkgs "${BOOKWORM_PKGS[@]}"; then
  echo "install-deps: installing Debian 12 packages" >&2
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${BOOKWORM_PKGS[@]}" >/dev/null
fi

# Dovecot's package enables and starts the system service; the tests run
# their own private instances on loopback, so the system one is left alone.

if ! mbedtls_ok; then
  echo "install-deps: installing mbedTLS 3.6 from Debian 13 (private apt state)" >&2
  state=$(mktemp -d /tmp/imapguard-trixie.XXXXXX)
  trap 'rm -rf "$state"' EXIT
  mkdir -p "$state/lists/partial" "$state/archives/partial" "$state/debs"
  cat >"$state/trixie.sources" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt_opts=(
    -o Dir::Etc::sourcelist="$state/trixie.sources"
    -o Dir::Etc::sourceparts=-
    -o Dir::State::Lists="$state/lists"
    -o Dir::Cache="$state/cache"
    -o Dir::Cache::archives="$state/archives"
    -o APT::Get::List-Cleanup=0
  )
  mkdir -p "$state/cache"
  $SUDO apt-get "${apt_opts[@]}" update -qq
  (cd "$state/debs" && $SUDO apt-get "${apt_opts[@]}" download "${MBEDTLS_PKGS[@]}")
  $SUDO dpkg -i "$state"/debs/*.deb >/dev/null
  mbedtls_ok || { echo "install-deps: mbedTLS >= $MBEDTLS_MIN not installed" >&2; exit 1; }
fi

echo "install-deps: all dependencies present (mbedTLS $(dpkg-query -W -f='${Version}' libmbedtls-dev))" >&2
