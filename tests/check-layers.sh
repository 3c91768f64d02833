#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The library's files call downwards only: no two of its .c files call each
# other's functions in a circle, directly or through others.  Callbacks a
# layer installs in the one below (tables of function pointers) are not
# calls by name and do not count.  Also: no .c file of the library is over
# MAX_LINES lines.
#
# Usage: check-layers.sh            the library as built ($PIER_BUILDDIR,
#                                   sources in $PIER_SRCDIR)
#        check-layers.sh --edges F  F lists "caller callee" file pairs
set -eu

MAX_LINES=900

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Reads "caller callee" pairs on stdin; fails, naming the files, on a loop.
check_edges() {
	awk '$1 != $2' | sort -u >"$tmp/edges"
	if ! tsort "$tmp/edges" >/dev/null 2>"$tmp/loops"; then
		echo "check-layers: these files call each other in a circle:" >&2
		sed -n 's/^tsort: //p' "$tmp/loops" | grep -v 'input contains a loop' >&2
		echo "check-layers: (caller callee pairs:)" >&2
		sed 's/^/  /' "$tmp/edges" >&2
		return 1
	fi
}

if [ "${1:-}" = "--edges" ]; then
	check_edges <"$2"
	exit $?
fi

build=${PIER_BUILDDIR:-.}
src=${PIER_SRCDIR:-.}
objs=$(ls "$build"/lib/.libs/libpier_core_la-*.o "$build"/transports/.libs/libpier_core_la-*.o \
	2>/dev/null || ls "$build"/lib/libpier_core_la-*.o "$build"/transports/libpier_core_la-*.o)
[ -n "$objs" ] || { echo "check-layers: no objects under $build" >&2; exit 99; }

# Which file defines each global symbol, and which each file uses.
# (lib/.libs/libpier_core_la-conn.o is lib/conn.)
name() {
	echo "/$1" | sed 's|.*/\([a-z]*\)/\(\.libs/\)\{0,1\}libpier_core_la-\(.*\)\.o$|\1/\3|'
}
for o in $objs; do
	nm --defined-only -g "$o" | awk -v f="$(name "$o")" 'NF == 3 { print $3, f }'
done | sort -k1,1 >"$tmp/defs"
for o in $objs; do
	nm -u "$o" | awk -v f="$(name "$o")" '{ print $NF, f }'
done | sort -k1,1 >"$tmp/uses"
join "$tmp/uses" "$tmp/defs" | awk '{ print $2, $3 }' >"$tmp/pairs"
[ -s "$tmp/pairs" ] || { echo "check-layers: found no calls between files" >&2; exit 99; }

status=0
check_edges <"$tmp/pairs" || status=1
for c in "$src"/lib/*.c "$src"/transports/*.c; do
	n=$(wc -l <"$c")
	if [ "$n" -gt "$MAX_LINES" ]; then
		echo "check-layers: $c has $n lines, over $MAX_LINES: split it by job" >&2
		status=1
	fi
done
exit $status
