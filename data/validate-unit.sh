#!/bin/sh
# Runs `systemd-analyze --user verify` on the unit, with ExecStart pointing at the built gchatd
# (the installed path does not exist yet) and a runtime folder of its own (root has none).
set -eu
analyze="$1"; unit="$2"; gchatd="$3"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|^ExecStart=.*|ExecStart=$gchatd|" "$unit" > "$dir/gchatd.service"
mkdir -m 0700 "$dir/run"
XDG_RUNTIME_DIR="$dir/run" SYSTEMD_LOG_LEVEL=notice "$analyze" --user verify "$dir/gchatd.service" 2>&1 | tee "$dir/log"
# verify exits 0 on some warnings; any line about the unit is a finding.
if grep -q "gchatd.service" "$dir/log"; then
  exit 1
fi
