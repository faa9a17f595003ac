#!/bin/sh
# Regenerates the certificate fixtures of the unit tests (test_cert_name,
# test_certstore). The output is committed: run this only to change the set.
# Everything is signed by one throw-away ECDSA P-256 CA and valid for 20 years
# so the tests do not rot. Keys are test-only secrets; never deploy them.
#
#   ca.pem / ca.key                 the CA (ECDSA P-256)
#   multi.pem / multi.key           SAN DNS mail.example.com, imap.example.com;
#                                   CN subject-cn.example.com (must be ignored)
#   wildcard.pem / wildcard.key     SAN DNS *.example.com (RSA 2048)
#   cnonly.pem / cnonly.key         no SAN, CN legacy.example.com (RSA 2048,
#                                   key stored as DER to cover that format)
#   ip.pem / ip.key                 SAN IP 127.0.0.1 and ::1 only,
#                                   CN ip.example.com
#   dual-ecdsa.pem / .key           SAN DNS dual.example.com (ECDSA P-256)
#   dual-rsa.pem / .key             SAN DNS dual.example.com (RSA 2048)
#   mismatch.pem / mismatch.key     SAN DNS mismatch.example.com, with the key
#                                   of another certificate
# Every *.pem leaf file is a chain: the leaf, then ca.pem.
set -eu

cd "$(dirname "$0")"
DAYS=7300
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

eckey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
rsakey() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1"; }

eckey ca.key
cat >"$tmp/ca.ext" <<'EOT'
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOT
openssl req -new -key ca.key -subj "/O=imapguard tests/CN=imapguard test CA" \
    -out "$tmp/ca.csr"
openssl x509 -req -in "$tmp/ca.csr" -signkey ca.key -days "$DAYS" -sha256 \
    -extfile "$tmp/ca.ext" -out ca.pem

# leaf NAME KEYTYPE CN [SAN]: signs NAME.key into NAME.pem (leaf + CA).
leaf() {
	name=$1 type=$2 cn=$3 san=${4:-}
	if [ ! -f "$name.key" ]; then
		"${type}key" "$name.key"
	fi
	if [ "$type" = ec ]; then
		ku="critical, digitalSignature"
	else
		ku="critical, digitalSignature, keyEncipherment"
	fi
	{
		echo "basicConstraints = critical, CA:FALSE"
		echo "keyUsage = $ku"
		echo "extendedKeyUsage = serverAuth"
		echo "subjectKeyIdentifier = hash"
		echo "authorityKeyIdentifier = keyid"
		if [ -n "$san" ]; then
			echo "subjectAltName = $san"
		fi
	} >"$tmp/$name.ext"
	openssl req -new -key "$name.key" -subj "/O=imapguard tests/CN=$cn" \
	    -out "$tmp/$name.csr"
	openssl x509 -req -in "$tmp/$name.csr" -CA ca.pem -CAkey ca.key \
	    -CAcreateserial -CAserial "$tmp/ca.srl" -days "$DAYS" -sha256 \
	    -extfile "$tmp/$name.ext" -out "$tmp/$name.crt"
	cat "$tmp/$name.crt" ca.pem >"$name.pem"
}

rm -f multi.key wildcard.key cnonly.key ip.key dual-ecdsa.key dual-rsa.key \
    mismatch.key

leaf multi ec subject-cn.example.com "DNS:mail.example.com, DNS:imap.example.com"
leaf wildcard rsa "*.example.com" "DNS:*.example.com"
leaf cnonly rsa legacy.example.com
openssl pkey -in cnonly.key -outform DER -out "$tmp/cnonly.der"
mv "$tmp/cnonly.der" cnonly.key
leaf ip ec ip.example.com "IP:127.0.0.1, IP:::1"
leaf dual-ecdsa ec dual.example.com "DNS:dual.example.com"
leaf dual-rsa rsa dual.example.com "DNS:dual.example.com"
leaf mismatch ec mismatch.example.com "DNS:mismatch.example.com"
eckey mismatch.key # replace the key: it no longer belongs to mismatch.pem

rm -f ca.srl
echo "fixtures written to $(pwd)"
