#!/bin/sh
# Runs `systemd-analyze verify` on the configured units, with ExecStart
# rewritten to the build-tree daemons. Usage: verify.sh BUILD_ROOT UNIT...
# Exits 77 (meson: skipped) when systemd-analyze is not installed.
set -eu
build=$1
shift
command -v systemd-analyze >/dev/null 2>&1 || { echo "systemd-analyze not found: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for u in "$@"; do
	name=$(basename "$u")
	sed -E "s|^ExecStart=[^ ]*/cairn-([a-z]+)|ExecStart=$build/\\1/cairn-\\1|" "$u" >"$tmp/$name"
done
# A daemon not built yet (meson test rebuilds only what a test names) is
# replaced by true(1): what is checked here is the units, not the binaries.
stand_in=$(command -v true)
for u in "$tmp"/*.service; do
	bin=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$u")
	if [ ! -x "$bin" ]; then
		echo "note: $bin not built; verifying with $stand_in in its place"
		sed -i "s|^ExecStart=$bin|ExecStart=$stand_in|" "$u"
	fi
done
cd "$tmp"
# verify prints problems on stderr and fails on errors; treat any output
# as a failure too, so that warnings (unknown keys, bad values) are caught.
out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no ./*.service ./*.target 2>&1) || {
	printf '%s\n' "$out"
	exit 1
}
if [ -n "$out" ]; then
	printf '%s\n' "$out"
	exit 1
fi
echo "systemd-analyze verify: $# units OK"
