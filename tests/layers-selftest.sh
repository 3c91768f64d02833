#!/bin/sh
# SPDX-License-Identifier: MIT
#
# check-layers.sh can fail: a circle of calls, direct or through a third
# file, is found; calls that only go down pass.
set -eu

here=$(dirname "$0")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

printf 'peer route\nroute conn\nconn link\n' >"$tmp/down"
printf 'conn route\nroute conn\n' >"$tmp/direct"
printf 'peer route\nroute conn\nconn peer\n' >"$tmp/through"

"$here/check-layers.sh" --edges "$tmp/down" || { echo "downward calls were refused" >&2; exit 1; }
for f in direct through; do
	if "$here/check-layers.sh" --edges "$tmp/$f" 2>"$tmp/err"; then
		echo "a circle ($f) was not found" >&2
		exit 1
	fi
	grep -q "conn" "$tmp/err" || { echo "the report does not name the files" >&2; exit 1; }
done
