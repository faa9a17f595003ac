#!/usr/bin/env bash
# Installs, idempotently, everything imapguard's build, demo and tests need on
# Debian 12 (bookworm).
#
# Debian 12 ships mbedTLS 2.28 (end of life, no TLS 1.3). From Debian 13
# "trixie" we take, with a private apt sources list and a private state
# directory each time (trixie is never added to the system's sources):
# - the source package of mbedTLS 3.6 LTS (`apt-get source`), unpacked as
#   released upstream into .deps/mbedtls in the checkout: CMake builds it with
#   imapguard's own configuration (crypto/mbedtls_config.h), the default;
# - its four binary packages (`apt-get download`, then `dpkg -i`), which
#   `cmake -DIG_SYSTEM_MBEDTLS=ON` links instead.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

BOOKWORM_PKGS=(
  cmake make gcc clang pkg-config git ca-certificates
  # dpkg-source unpacks and checks mbedTLS's Debian source package;
  # mbedTLS's driver wrapper generator needs jinja2 and jsonschema; the PSA
  # driver (crypto/driver/) calls OpenSSL's libcrypto; patch applies
  # crypto/patches/ to the build's copy of mbedTLS
  dpkg-dev python3-jinja2 python3-jsonschema libssl-dev patch
  # clang's sanitizer and libFuzzer runtimes (a Recommends of clang-14)
  libclang-rt-14-dev
  libuv1-dev libyaml-dev libcmocka-dev
  # app passwords (apppass/): the store is an SQLite database, the hash
  # Argon2id from the reference implementation's library
  libsqlite3-dev libargon2-dev
  # the TOTP enrolment's QR code drawn in the terminal (apppass/qr.c)
  libqrencode-dev
  dovecot-imapd
  python3 python3-pytest
  # the package test (tests/integration/test_package.py): CPack's DEB
  # generator finds ELF files with file(1) for dpkg-shlibdeps (dpkg-dev);
  # systemd-analyze verifies the unit (installing systemd starts nothing in
  # a chroot or container without it); groff and man render the man pages
  file systemd groff-base man-db
  curl openssl
  # the benchmark's load generator (bench/ig_loadgen) uses OpenSSL as its client
  libssl-dev
  # real IMAP clients driven by tests/integration/test_clients.py
  fetchmail isync getmail6 offlineimap3 imapfilter mailutils mutt neomutt
  # isync (mbsync) takes its SASL mechanisms from the Cyrus SASL plugins,
  # a Recommends that --no-install-recommends skips
  libsasl2-modules
  # a TCP load balancer sending the PROXY protocol, in front of imapguard in
  # tests/integration/test_proxyproto.py
  haproxy
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

# Runs apt-get against trixie alone: its own sources list (deb or deb-src),
# lists and caches under a fresh directory, removed on exit.
trixie_state=""
cleanup() { if [ -n "$trixie_state" ]; then rm -rf "$trixie_state"; fi; }
trap cleanup EXIT
trixie_apt() { # type (deb|deb-src), apt-get arguments...
  local type=$1; shift
  local dir="$trixie_state/$type"
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    cat >"$dir/trixie.sources" <<SRC
Types: $type
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  local opts=(
    -o Dir::Etc::sourcelist="$dir/trixie.sources"
    -o Dir::Etc::sourceparts=-
    -o Dir::State::Lists="$dir/lists"
    -o Dir::Cache="$dir/cache"
    -o Dir::Cache::archives="$dir/cache/archives"
    -o APT::Get::List-Cleanup=0
  )
  if [ ! -e "$dir/updated" ]; then
    $SUDO apt-get "${opts[@]}" update -qq
    touch "$dir/updated"
  fi
  $SUDO apt-get "${opts[@]}" "$@"
}
new_trixie_state() {
  if [ -z "$trixie_state" ]; then
    trixie_state=$(mktemp -d /tmp/imapguard-trixie.XXXXXX)
    chmod 755 "$trixie_state"
  fi
}

if ! mbedtls_ok; then
  echo "install-deps: installing mbedTLS 3.6 from Debian 13 (private apt state)" >&2
  new_trixie_state
  mkdir -p "$trixie_state/debs"
  (cd "$trixie_state/debs" && trixie_apt deb download "${MBEDTLS_PKGS[@]}")
  $SUDO dpkg -i "$trixie_state"/debs/*.deb >/dev/null
  mbedtls_ok || { echo "install-deps: mbedTLS >= $MBEDTLS_MIN not installed" >&2; exit 1; }
fi

# mbedTLS's source, for CMake's own build. .deps/mbedtls is a link to
# .deps/mbedtls-<version>; the tree is complete when .ig-source, written last,
# names the Debian source version it was unpacked from. apt checks the files
# against trixie's signed index and dpkg-source against the .dsc's checksums.
# Debian's patches are not applied: one of them removes the 3rdparty/ code
# (Everest's X25519) from mbedTLS's CMake build, which we use.
DEPS_DIR="$top/.deps"
mbedtls_src_version() { # tree -> upstream version from its build_info.h
  sed -n 's/^#define[ \t]*MBEDTLS_VERSION_STRING[ \t]*"\([0-9.]*\)".*/\1/p' \
    "$1/include/mbedtls/build_info.h" 2>/dev/null
}
mbedtls_src_ok() {
  local v
  [ -f "$DEPS_DIR/mbedtls/.ig-source" ] || return 1
  v=$(mbedtls_src_version "$DEPS_DIR/mbedtls")
  [ -n "$v" ] && dpkg --compare-versions "$v" ge "$MBEDTLS_MIN" &&
    dpkg --compare-versions "$v" lt 3.7
}
if ! mbedtls_src_ok; then
  echo "install-deps: fetching mbedTLS 3.6's source package from Debian 13 into $DEPS_DIR" >&2
  new_trixie_state
  src="$trixie_state/src"
  mkdir -p "$src" "$DEPS_DIR"
  # (The download runs as the caller: _apt could not write to $src anyway.)
  (cd "$src" && trixie_apt deb-src source --download-only -qq \
      -o APT::Sandbox::User="$(id -un)" mbedtls >/dev/null)
  dsc=$(ls "$src"/mbedtls_*.dsc)
  # dpkg-source warns that it cannot check the .dsc's signature (no Debian
  # keyring here): apt already checked the files against the signed index.
  dpkg-source --skip-patches -x "$dsc" "$src/tree" >"$src/dpkg-source.log" 2>&1 ||
    { cat "$src/dpkg-source.log" >&2; exit 1; }
  v=$(mbedtls_src_version "$src/tree")
  if [ -z "$v" ] || ! dpkg --compare-versions "$v" ge "$MBEDTLS_MIN" ||
     ! dpkg --compare-versions "$v" lt 3.7; then
    echo "install-deps: Debian 13's mbedtls source is version '$v', not 3.6.x" >&2
    exit 1
  fi
  debver=$(sed -n 's/^Version: //p' "$dsc")
  orig=$(ls "$src"/mbedtls_*.orig.tar.*)
  rm -rf "$DEPS_DIR/mbedtls-$v"
  mv "$src/tree" "$DEPS_DIR/mbedtls-$v"
  ln -sfn "mbedtls-$v" "$DEPS_DIR/mbedtls"
  printf 'debian-source: mbedtls %s\nupstream: %s\nsha256: %s  %s\n' "$debver" "$v" \
    "$(sha256sum "$orig" | cut -d' ' -f1)" "$(basename "$orig")" \
    >"$DEPS_DIR/mbedtls-$v/.ig-source"
  mbedtls_src_ok || { echo "install-deps: mbedTLS source not usable in $DEPS_DIR" >&2; exit 1; }
fi

# promtool (check metrics) parses /metrics in tests/integration/test_metrics.py.
# Debian 12 ships it only inside the Prometheus server's package, whose
# installation would start a Prometheus server: the package is downloaded
# (checked by apt against Debian's signed index) and only unpacked into
# .deps/prometheus, never installed.
PROMTOOL="$DEPS_DIR/prometheus/usr/bin/promtool"
if [ ! -x "$PROMTOOL" ]; then
  echo "install-deps: unpacking promtool from Debian's prometheus package into $DEPS_DIR" >&2
  ptmp=$(mktemp -d)
  fetch_prom() {
    (cd "$ptmp" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" prometheus \
        >/dev/null 2>&1)
  }
  fetch_prom || { $SUDO apt-get update -qq && fetch_prom; } ||
    { echo "install-deps: cannot download Debian's prometheus package" >&2; exit 1; }
  rm -rf "$DEPS_DIR/prometheus.tmp"
  dpkg-deb -x "$ptmp"/prometheus_*.deb "$DEPS_DIR/prometheus.tmp"
  rm -rf "$DEPS_DIR/prometheus" "$ptmp"
  mv "$DEPS_DIR/prometheus.tmp" "$DEPS_DIR/prometheus"
  "$PROMTOOL" --version >/dev/null 2>&1 ||
    { echo "install-deps: $PROMTOOL does not run" >&2; exit 1; }
fi

echo "install-deps: all dependencies present (mbedTLS $(dpkg-query -W -f='${Version}' libmbedtls-dev);" \
  "source $(sed -n 's/^debian-source: mbedtls //p' "$DEPS_DIR/mbedtls/.ig-source") in $DEPS_DIR/mbedtls)" >&2
