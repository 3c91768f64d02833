#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs what building and testing libpier needs on Debian (bookworm or
# later), as root.  Installs nothing that is already there.
set -eu

# openssl (the command) is the far end of the TLS interoperability tests;
# autoconf-archive has the AX_ macros that autoreconf copies into m4/;
# systemd has systemd-socket-activate, which starts the example service in
# tests/activation.test (the library does not link libsystemd); json-c
# reads the JSON bodies of typed interfaces.
packages="build-essential autoconf autoconf-archive automake libtool pkg-config liburing-dev check libssl-dev openssl systemd libjson-c-dev"
# Optional extras:
#   --with-fuzzing      clang and its runtimes, for the fuzz targets and TSan
#   --with-bench-peers  ZeroMQ and nng, which make bench compares with
#   --with-valgrind     valgrind, for make check-valgrind
#   --with-netns        iproute2, to run the tests in a network namespace
#                       without IPv6 (as CI does)
for opt in "$@"; do
	case "$opt" in
	--with-fuzzing) packages="$packages clang libclang-rt-14-dev" ;;
	--with-valgrind) packages="$packages valgrind" ;;
	--with-bench-peers) packages="$packages libzmq3-dev libnng-dev" ;;
	--with-netns) packages="$packages iproute2" ;;
	*) echo "setup-debian: unknown option $opt" >&2; exit 2 ;;
	esac
done

missing=
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "Installing:$missing"
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup-debian: run as root (or install those packages yourself)" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
fi
