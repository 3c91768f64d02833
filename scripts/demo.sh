#!/bin/sh
# SPDX-License-Identifier: MIT
# The demo of a built tree: a camera process hands full-HD frames to a vision
# process for a few seconds through a buffer pool, then for as long as a
# fresh memfd per frame (the way before pools), and says what happened:
# frames/s, latency from send to release, and fds opened per frame.
# Arguments: SECONDS (each way), then --pool or --fresh-memfd for one way.
set -eu
cd "$(dirname "$0")/.."
exec examples/camera-vision demo "${1:-5}" ${2:+"$2"}
