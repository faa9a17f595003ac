#!/bin/sh
# Development certificates for imapguard: a local CA and two server
# certificates signed by it (ECDSA P-256 and RSA 2048) for localhost,
# 127.0.0.1, ::1 and any extra names given.
#
#   certs/gen-dev-cert.sh OUTDIR [NAME...]
#
# Writes into OUTDIR:
#   ca.pem, ca.key                    the development CA (point clients here)
#   server-ecdsa.pem, server-ecdsa.key  chain (leaf + CA) and key
#   server-rsa.pem, server-rsa.key      chain (leaf + CA) and key
#
# Idempotent: files that exist and are still valid (parse, key matches,
# verify against the CA, cover every requested name, more than 30 days left)
# are kept; anything else is regenerated. A new CA means new leaves. NAME
# arguments that are IPv4 or IPv6 literals become iPAddress SANs, the rest
# dNSName SANs. Needs the openssl command line tool. Never use these in
# production: the CA key sits next to the certificates.
set -eu
set -f # names such as *.example.com must never glob

CA_DAYS=3650   # the CA may outlive several leaf generations
LEAF_DAYS=825  # the most Apple platforms accept for a TLS server certificate
MIN_LEFT=2592000 # regenerate what expires within 30 days (seconds)

prog=$(basename "$0")
usage() {
	echo "usage: $prog OUTDIR [DNSNAME|IP...]" >&2
	exit 2
}
die() {
	echo "$prog: $*" >&2
	exit 1
}

[ $# -ge 1 ] || usage
case $1 in -h|--help) usage ;; esac
out=$1
shift
command -v openssl >/dev/null 2>&1 || die "openssl not found"

# The SAN list: the defaults, then the extra names (deduplicated).
is_ip() {
	case $1 in
	*:*) return 0 ;; # IPv6 (a DNS name never holds ':')
	*[!0-9.]*) return 1 ;;
	*.*.*.*) return 0 ;;
	*) return 1 ;;
	esac
}
names="localhost 127.0.0.1 ::1"
for n in "$@"; do
	n=${n%.} # an absolute name's trailing dot is not part of a SAN
	case $n in
	''|*[!A-Za-z0-9.:*_-]*|.*|*..*) die "invalid name: '$n'" ;;
	esac
	case " $names " in
	*" $n "*) ;;
	*) names="$names $n" ;;
	esac
done
san=
for n in $names; do
	if is_ip "$n"; then
		entry="IP:$n"
	else
		entry="DNS:$n"
	fi
	san="${san:+$san, }$entry"
done

mkdir -p "$out"
umask 077
tmp=$(mktemp -d "$out/.gen-dev-cert.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# pubkey_of FILE KIND: the public key of a certificate (x509) or key (pkey).
pubkey_of() {
	if [ "$2" = x509 ]; then
		openssl x509 -in "$1" -noout -pubkey 2>/dev/null
	else
		openssl pkey -in "$1" -pubout 2>/dev/null
	fi
}

ca_valid() {
	[ -s "$out/ca.pem" ] && [ -s "$out/ca.key" ] || return 1
	openssl x509 -in "$out/ca.pem" -noout -checkend "$MIN_LEFT" >/dev/null 2>&1 ||
		return 1
	[ "$(pubkey_of "$out/ca.pem" x509)" = "$(pubkey_of "$out/ca.key" pkey)" ] ||
		return 1
	[ -n "$(pubkey_of "$out/ca.pem" x509)" ]
}

# ip_canon ADDR: an IP literal the way openssl prints it in a SAN (IPv6 in
# eight groups without leading zeros). An IPv4-mapped IPv6 literal is not
# rewritten; it then never compares equal and is merely regenerated.
ip_canon() {
	case $1 in
	*:*) printf '%s\n' "$1" | awk '{
		n = split($0, halves, "::")
		nl = (halves[1] == "") ? 0 : split(halves[1], l, ":")
		nr = (n < 2 || halves[2] == "") ? 0 : split(halves[2], r, ":")
		out = ""
		for (i = 1; i <= nl; i++) out = out g(l[i]) ":"
		for (i = 0; i < 8 - nl - nr; i++) out = out "0:"
		for (i = 1; i <= nr; i++) out = out g(r[i]) ":"
		print toupper(substr(out, 1, length(out) - 1))
	}
	function g(x) { sub(/^0+/, "", x); return x == "" ? "0" : x }' ;;
	*) printf '%s\n' "$1" ;;
	esac
}

# leaf_valid BASE: BASE.pem/BASE.key exist, match, verify and cover $names.
leaf_valid() {
	pem="$out/$1.pem" key="$out/$1.key"
	[ -s "$pem" ] && [ -s "$key" ] || return 1
	openssl x509 -in "$pem" -noout -checkend "$MIN_LEFT" >/dev/null 2>&1 || return 1
	[ -n "$(pubkey_of "$pem" x509)" ] || return 1
	[ "$(pubkey_of "$pem" x509)" = "$(pubkey_of "$key" pkey)" ] || return 1
	openssl x509 -in "$pem" -out "$tmp/leaf.pem" 2>/dev/null || return 1
	openssl verify -CAfile "$out/ca.pem" -purpose sslserver "$tmp/leaf.pem" \
		>/dev/null 2>&1 || return 1
	have=$(openssl x509 -in "$pem" -noout -ext subjectAltName 2>/dev/null |
		tr ',' '\n' | sed -e 's/^ *//' -e 's/^IP Address:/IP:/' -e 's/ *$//') || return 1
	for n in $names; do
		if is_ip "$n"; then
			want="IP:$(ip_canon "$n")"
			printf '%s\n' "$have" | grep -qixF "$want" || return 1
		else
			printf '%s\n' "$have" | grep -qixF "DNS:$n" || return 1
		fi
	done
}

made=

make_ca() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$tmp/ca.key" 2>/dev/null
	cat >"$tmp/ca.ext" <<EOF
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
	openssl req -new -key "$tmp/ca.key" -out "$tmp/ca.csr" \
		-subj "/O=imapguard development/CN=imapguard development CA $(hostname 2>/dev/null || echo local) $(date +%Y%m%d%H%M%S)"
	openssl x509 -req -in "$tmp/ca.csr" -signkey "$tmp/ca.key" -sha256 \
		-days "$CA_DAYS" -extfile "$tmp/ca.ext" -out "$tmp/ca.pem" 2>/dev/null
	mv "$tmp/ca.key" "$out/ca.key"
	chmod 644 "$tmp/ca.pem"
	mv "$tmp/ca.pem" "$out/ca.pem"
	made="$made ca.pem ca.key"
}

# make_leaf BASE ec|rsa
make_leaf() {
	base=$1
	if [ "$2" = ec ]; then
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
			-out "$tmp/$base.key" 2>/dev/null
		ku="critical, digitalSignature"
	else
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
			-out "$tmp/$base.key" 2>/dev/null
		ku="critical, digitalSignature, keyEncipherment"
	fi
	cat >"$tmp/$base.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = $ku
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $san
EOF
	openssl req -new -key "$tmp/$base.key" -out "$tmp/$base.csr" \
		-subj "/O=imapguard development/CN=localhost"
	openssl x509 -req -in "$tmp/$base.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" \
		-CAcreateserial -CAserial "$tmp/ca.srl" -sha256 -days "$LEAF_DAYS" \
		-extfile "$tmp/$base.ext" -out "$tmp/$base.crt" 2>/dev/null
	cat "$tmp/$base.crt" "$out/ca.pem" >"$tmp/$base.pem"
	chmod 644 "$tmp/$base.pem"
	# Key first: a reader never sees a new chain with the old key for long,
	# and a half-done run is simply redone next time.
	mv "$tmp/$base.key" "$out/$base.key"
	mv "$tmp/$base.pem" "$out/$base.pem"
	made="$made $base.pem $base.key"
}

if ! ca_valid; then
	make_ca
	rm -f "$out/server-ecdsa.pem" "$out/server-rsa.pem"
fi
leaf_valid server-ecdsa || make_leaf server-ecdsa ec
leaf_valid server-rsa || make_leaf server-rsa rsa

if [ -n "$made" ]; then
	echo "$prog: wrote$made in $out"
	echo "$prog: names: $san"
else
	echo "$prog: $out is up to date ($san)"
fi
echo "$prog: clients should trust $out/ca.pem"
