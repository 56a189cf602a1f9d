#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Runs every libFuzzer target of BUILD_DIR for SECONDS each, on a copy of its seed corpus (the
# committed corpus never grows), and fails on any finding: crash, sanitizer report, leak,
# timeout or running out of memory. Prints one line per target, "PASS name: …" or
# "FAIL name: …" with the path of the input that shows the problem.
#
# BUILD_DIR is configured for fuzzing:
#   CC=clang meson setup BUILD_DIR -Dfuzzing=true -Db_sanitize=address,undefined \
#     -Db_lundef=false -Dgui=disabled
set -uo pipefail

if [ $# -ne 2 ] || ! [[ $2 =~ ^[0-9]+$ ]]; then
  echo "Usage: $0 BUILD_DIR SECONDS" >&2
  exit 2
fi
build=$(cd "$1" && pwd) || exit 2
seconds=$2
here=$(cd "$(dirname "$0")" && pwd)
targets=(fuzz-config fuzz-datagram fuzz-frame fuzz-handshake-client fuzz-handshake-server
         fuzz-message)

# Findings are kept in the build folder, so that they outlive this run.
artifacts="$build/fuzz-findings"
mkdir -p "$artifacts"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ninja -C "$build" "${targets[@]/#/tests/fuzz/}" >/dev/null || {
  echo "FAIL build: ninja -C $build could not build the fuzz targets"; exit 1; }

# UBSan would otherwise report and carry on; a report is a finding.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
# Criticals abort in the targets themselves (fuzz-common.h); this catches any other process.
export G_DEBUG=fatal-criticals

status=0
for target in "${targets[@]}"; do
  corpus="$work/$target"
  log="$artifacts/$target.log"
  cp -r "$here/corpus/$target" "$corpus"
  "$build/tests/fuzz/$target" "$corpus" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/$target-" \
    >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  if [ $rc -eq 0 ] && [ -n "$runs" ]; then
    echo "PASS $target: ${speed:-?} execs/s, ${runs} runs in ${seconds} s"
  else
    status=1
    finding=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
    summary=$(grep -m1 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|.*check failed|.*CRITICAL)' \
              "$log")
    echo "FAIL $target (exit $rc): ${summary:-see the log}"
    echo "     input: ${finding:-none written}; log: $log"
    echo "     reproduce: $build/tests/fuzz/$target ${finding:-}"
  fi
done
exit $status
