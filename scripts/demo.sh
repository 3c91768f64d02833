#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs the demo of a built tree: for now, the smallest example.
set -eu
cd "$(dirname "$0")/.."
exec examples/hello
