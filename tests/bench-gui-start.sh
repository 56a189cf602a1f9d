#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Runs bench-gui of the build folder $1 as the GUI tests run: an X server of its own (Xvfb,
# 1280×800, 24 bits), a private session bus, and the accessibility bus started first, as on a
# desktop. Further arguments go to bench-gui (--runs N, --gchat PATH, --gchatd PATH).
set -eu
if [ $# -lt 1 ]; then
  echo "usage: $0 BUILDDIR [bench-gui options]" >&2
  exit 2
fi
bench="$1/tests/bench-gui"
shift
exec xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- sh -c '
  /usr/libexec/at-spi-bus-launcher --launch-immediately &
  launcher=$!
  sleep 1
  status=0
  "$@" || status=$?
  kill $launcher 2>/dev/null || true
  exit $status
' sh "$bench" "$@"
