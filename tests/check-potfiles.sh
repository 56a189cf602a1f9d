#!/bin/sh
# Fails when a source file with strings marked for translation is missing from po/POTFILES, or
# when POTFILES names a file that does not exist: either way a language would silently miss text.
set -eu
top="$1"
cd "$top"
status=0
for f in $(grep -l -E '_ ?\("|N_ ?\("|translatable="yes"' protocol/*.c protocol/*/*.c server/*.c gui/*.c gui/*/*.c gui/*.ui gui/*/*.ui \
    2>/dev/null); do
  if ! grep -qx "$f" po/POTFILES; then
    echo "po/POTFILES lacks $f, which has strings marked for translation"
    status=1
  fi
done
for f in $(grep -v '^#' po/POTFILES | grep -v '^$'); do
  if [ ! -f "$f" ]; then
    echo "po/POTFILES names $f, which does not exist"
    status=1
  fi
done
exit $status
