#!/bin/sh
# Runs one GUI test the way a desktop would: a private D-Bus session, the accessibility bus
# started before the application (so AT-SPI is there when it looks), and an X server of its own.
# Usage: run-gui-test.sh BUILD_DIR TEST.py [LANGUAGE]
set -eu
build="$1"
script="$2"
export GCHAT_BUILD_DIR="$build"
export GCHAT_TEST_LANGUAGE="${3:-}"
export GCHAT_SCREENSHOT_DIR="$build/screenshots"
exec xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- sh -c '
  /usr/libexec/at-spi-bus-launcher --launch-immediately &
  launcher=$!
  sleep 1
  /usr/bin/python3 "$0"
  status=$?
  kill $launcher 2>/dev/null || true
  exit $status
' "$script"
