#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Compares the dynamic symbols a library exports with the names its version
# script lists, in both directions: an export the script does not list fails,
# and so does a listed name the library does not export.
#
# Usage: check-symbols.sh [LIBRARY VERSION-SCRIPT]
# Without arguments: the libtool library $PIER_LA and the script $PIER_SYM.
set -eu

if [ $# -eq 2 ]; then
	lib=$1
	map=$2
elif [ $# -eq 0 ]; then
	dlname=$(sed -n "s/^dlname='\(.*\)'\$/\1/p" "$PIER_LA")
	lib=$(dirname "$PIER_LA")/.libs/$dlname
	map=$PIER_SYM
else
	echo "usage: $0 [LIBRARY VERSION-SCRIPT]" >&2
	exit 99
fi
[ -f "$lib" ] || { echo "check-symbols: no library at $lib" >&2; exit 99; }
[ -f "$map" ] || { echo "check-symbols: no version script at $map" >&2; exit 99; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Defined dynamic symbols, less the version nodes (absolute symbols).
nm -D --defined-only "$lib" |
	awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' | sort -u >"$tmp/exported"
# Every name in a global: section of the script, comments removed.
perl -0777 -ne 's{/\*.*?\*/}{}gs; s{#[^\n]*}{}g;
	while (/global\s*:(.*?)(?:local\s*:|\})/gs) {
		for (split /;/, $1) { s/\s+//g; print "$_\n" if length }
	}' "$map" | sort -u >"$tmp/listed"

status=0
unlisted=$(comm -23 "$tmp/exported" "$tmp/listed")
missing=$(comm -13 "$tmp/exported" "$tmp/listed")
if [ -n "$unlisted" ]; then
	echo "exported but not listed in $map:"
	echo "$unlisted" | sed 's/^/  /'
	status=1
fi
if [ -n "$missing" ]; then
	echo "listed in $map but not exported:"
	echo "$missing" | sed 's/^/  /'
	status=1
fi
[ "$status" -eq 0 ] && echo "check-symbols: $(wc -l <"$tmp/listed") symbols, exports match"
exit "$status"
