#!/bin/sh
# SPDX-License-Identifier: MIT
# The demo of a built tree: a camera process hands full-HD frames to a vision
# process as file descriptors for a few seconds, and says what happened.
set -eu
cd "$(dirname "$0")/.."
exec examples/camera-vision demo "${1:-5}"
