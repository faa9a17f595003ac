#!/bin/sh
# The include graph, at two levels.
#
# Between the source folders: prints each folder-level edge ("config ->
# policy  12") and fails if one points upwards, i.e. is not in the allowed
# set below, naming the file and line of each offending #include. The
# allowed edges form the layers of docs/ARCHITECTURE.md:
#
#   util   -> nothing of the project's
#   crypto -> util
#   certs  -> util
#   policy -> util
#   apppass -> util
#   config -> policy, certs, crypto, apppass, util
#   proxy  -> config, policy, certs, crypto, apppass, util
#
# Inside proxy/, between modules: a file belongs to module x when it is
# x.c, x.h, x_types.h or x_raw.h. Every module has a layer in
# PROXY_LAYERS below (top first); a module may include only modules of
# lower layers. Within a layer, only the session state machine's modules
# (PROXY_CYCLE) include one another: that is the one cycle by design, and
# since every other edge points strictly downwards there can be no other.
# It prints each module-level edge with its count and fails, naming the
# file and line, on an include of a module above or beside its own, and on
# a module missing from the table (a new file: give it its layer here and
# in docs/ARCHITECTURE.md).
#
# Includes inside a folder are not folder edges; includes inside a module
# are not module edges. Exits 0 when both levels are clean, 1 otherwise.
# Usage: scripts/include-graph.sh (from anywhere; it reads the tree it
# lives in). ctest runs it as structure.include_graph.
set -eu

cd "$(dirname "$0")/.."

FOLDERS="util crypto certs policy apppass config proxy"

# proxy/'s modules, one layer per line, top first: "rank module...".
PROXY_LAYERS="
1 main
2 server ticketkey apppass_cli totp_cli
3 worker ctl admin_http storecli
4 listener probe
5 session preauth attempt backend relay
6 sessions
7 shared gen apprt
8 tls
9 conn
10 caps conncount bufpool proxyproto metrics http_parse loginfmt
11 imap_parse expo
"
# The session state machine: one cycle over session_types.h, by design.
PROXY_CYCLE="session preauth attempt backend relay"

allowed() {
	case "$1 -> $2" in
	"crypto -> util" | "certs -> util" | "policy -> util" | "apppass -> util") return 0 ;;
	"config -> apppass" | "proxy -> apppass") return 0 ;;
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

# proxy/: every file's module must be in the table ("FILE path" lines), and
# every include of another proxy module must point to a lower layer.
pstatus=0
pedges=$(
	{
		for f in proxy/*.c proxy/*.h; do
			[ ! -e "$f" ] || printf 'FILE %s\n' "$f"
		done
		grep -Hn '^[[:space:]]*#[[:space:]]*include[[:space:]]*"proxy/' \
		    proxy/*.c proxy/*.h 2>/dev/null || :
	} | awk -v layers="$PROXY_LAYERS" -v cycle="$PROXY_CYCLE" '
	function module(path,   m) {
		m = path
		sub(/^.*\//, "", m)
		sub(/\.[ch]$/, "", m)
		sub(/_(types|raw)$/, "", m)
		return m
	}
	function complain(msg) {
		printf "include-graph: %s\n", msg > "/dev/stderr"
		bad = 1
	}
	BEGIN {
		n = split(layers, lines, "\n")
		for (i = 1; i <= n; i++) {
			k = split(lines[i], f, " ")
			for (j = 2; j <= k; j++)
				rank[f[j]] = f[1] + 0
		}
		k = split(cycle, f, " ")
		for (j = 1; j <= k; j++)
			incycle[f[j]] = 1
	}
	$1 == "FILE" {
		m = module($2)
		if (!(m in rank) && !(m in unknown)) {
			unknown[m] = 1
			complain($2 ": module " m " has no layer in PROXY_LAYERS " \
			    "(scripts/include-graph.sh)")
		}
		next
	}
	{
		# proxy/session.c:22:#include "proxy/tls.h"
		split($0, p, ":")
		where = p[1] ":" p[2]
		to = $0
		sub(/^[^"]*"/, "", to)
		sub(/".*$/, "", to)
		from = module(p[1])
		tgt = module(to)
		if (from == tgt)
			next
		if (!(from in rank) || !(tgt in rank)) {
			if (!(tgt in rank))
				complain(where " includes " to ": module " tgt \
				    " has no layer in PROXY_LAYERS (scripts/include-graph.sh)")
			next
		}
		n_edge[from " -> " tgt]++
		r_edge[from " -> " tgt] = rank[from]
		if (rank[tgt] < rank[from])
			complain(where " includes " to ": " from " -> " tgt \
			    " points upwards (" tgt " is above " from ")")
		else if (rank[tgt] == rank[from] && !(incycle[from] && incycle[tgt]))
			complain(where " includes " to ": " from " -> " tgt \
			    " is within one layer (only the session state machine\047s " \
			    "modules include one another)")
	}
	END {
		for (e in n_edge)
			printf "%d\t%-24s %d\n", r_edge[e], e, n_edge[e]
		exit bad
	}'
) || pstatus=1
echo "proxy/ modules, top layer first:"
printf '%s\n' "$pedges" | sort -t "$(printf '\t')" -k1,1n -k2,2 | cut -f2- | sed 's/^/  /'
if [ "$pstatus" -eq 0 ]; then
	echo "include-graph: OK (in proxy/ every module includes only layers below" \
	    "its own, the session state machine aside)"
fi
[ "$status" -eq 0 ] && [ "$pstatus" -eq 0 ]
