#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Proves that check-symbols.sh fails where it must: on the real library
# against a version script that lacks one of its exports (an unlisted
# export), and against one that lists a name the library does not export.
set -eu
here=$(dirname "$0")
dlname=$(sed -n "s/^dlname='\(.*\)'\$/\1/p" "$PIER_LA")
lib=$(dirname "$PIER_LA")/.libs/$dlname
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

expect_failure() {
	what=$1 map=$2 needle=$3
	if "$here/check-symbols.sh" "$lib" "$map" >"$tmp/out" 2>&1; then
		echo "FAIL: check-symbols passed $what"
		cat "$tmp/out"
		exit 1
	fi
	if ! grep -q -- "$needle" "$tmp/out"; then
		echo "FAIL: check-symbols output for $what lacks '$needle':"
		cat "$tmp/out"
		exit 1
	fi
	echo "ok: check-symbols fails $what"
}

"$here/check-symbols.sh" "$lib" "$PIER_SYM" >/dev/null

# The library exports pier_strerror; a script without it must fail.
grep -v 'pier_strerror;' "$PIER_SYM" >"$tmp/unlisted.sym"
expect_failure "on an unlisted export" "$tmp/unlisted.sym" "exported but not listed"

# A listed name the library lacks must fail too.
sed 's/^global:/global:\n\tpier_no_such_function;/' "$PIER_SYM" >"$tmp/missing.sym"
expect_failure "on a listed symbol that is missing" "$tmp/missing.sym" "pier_no_such_function"
