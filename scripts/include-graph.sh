#!/bin/sh
# The include graph between the source folders: prints each folder-level
# edge ("config -> policy  12") and exits 1 if one points upwards, i.e. is
# not in the allowed set below, naming the file and line of each offending
# #include. The allowed edges form the layers of docs/ARCHITECTURE.md:
#
#   util   -> nothing of the project's
#   crypto -> util
#   certs  -> util
#   policy -> util
#   config -> policy, certs, crypto, util
#   proxy  -> config, policy, certs, crypto, util
#
# Includes inside a folder are not edges. Usage: scripts/include-graph.sh
# (from anywhere; it reads the tree it lives in).
set -eu

cd "$(dirname "$0")/.."

FOLDERS="util crypto certs policy config proxy"

allowed() {
	case "$1 -> $2" in
	"crypto -> util" | "certs -> util" | "policy -> util") return 0 ;;
	"config -> policy" | "config -> certs" | "config -> crypto" | "config -> util") return 0 ;;
	"proxy -> config" | "proxy -> policy" | "proxy -> certs" | "proxy -> crypto") return 0 ;;
	"proxy -> util") return 0 ;;
	*) return 1 ;;
	esac
}

# One line per project include that crosses folders: FROM TO FILE:LINE
edges=$(
	for from in $FOLDERS; do
		[ -d "$from" ] || continue
		grep -Hn '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' \
		    "$from"/*.c "$from"/*.h 2>/dev/null |
		sed -n 's|^\([^:]*\):\([0-9]*\):.*#[[:space:]]*include[[:space:]]*"\([a-z_]*\)/.*|\1:\2 \3|p' |
		while read -r where to; do
			[ "$to" = "$from" ] && continue
			printf '%s %s %s\n' "$from" "$to" "$where"
		done
	done
)

status=0
printf '%s\n' "$edges" | awk 'NF == 3 { n[$1 " -> " $2]++ } END { for (e in n) printf "%-20s %d\n", e, n[e] }' |
    sort
for from in $FOLDERS; do
	for to in $FOLDERS; do
		[ "$from" = "$to" ] && continue
		bad=$(printf '%s\n' "$edges" | awk -v f="$from" -v t="$to" '$1 == f && $2 == t { print $3 }')
		[ -n "$bad" ] || continue
		if ! allowed "$from" "$to"; then
			status=1
			for w in $bad; do
				printf 'include-graph: %s includes %s/: %s -> %s is not allowed\n' \
				    "$w" "$to" "$from" "$to" >&2
			done
		fi
	done
done
if [ "$status" -eq 0 ]; then
	echo "include-graph: OK (no edge points upwards, so no cycle between folders)"
fi
exit "$status"
