#!/usr/bin/env bash
# `ptorrent download` fails cleanly when the disk does: (a) an output
# directory on a read-only filesystem, (b) a filesystem too small for the
# torrent (ENOSPC part way through). Each run exits 3 (not a crash: < 128),
# in bounded time, with one "ptorrent:" error line naming the problem.
# Tests run as root, for whom permission bits do not apply, so both faults
# are tmpfs mounts (shared/REAL-PEERS.md, "Disk faults as root").
# timeout: 120
set -euo pipefail
. "$(dirname "$0")/lib_dl.sh"
need_ptorrent
need_cmd opentracker

# Can we mount at all? (Not root, or no CAP_SYS_ADMIN in a container: skip.)
RO="$E2E_TMP/ro"
mkdir -p "$RO"
mount -t tmpfs -o size=4m tmpfs "$RO" 2>/dev/null || skip "cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)"
track_mount "$RO"
mount -o remount,ro "$RO" 2>/dev/null || skip "cannot remount a tmpfs read-only here"
if touch "$RO/probe" 2>/dev/null; then fail "$RO is still writable after remount,ro"; fi

# One ~12 MiB torrent and one seeder serve both cases, so ptorrent really
# has bytes to write and fails on the disk, not on the network.
tracked_file $((12 * 1024 * 1024 + 99))
start_lt_seeders "$E2E_TMP/file.torrent" "$E2E_TMP/seed" 1
ot_wait_seeders "$IH" 1

# (a) Read-only output directory: the error names the path.
dl readonly 60 -t "$E2E_TMP/file.torrent" -o "$RO" --stats-json "$E2E_TMP/readonly.json"
expect_rc readonly 3
expect_one_error readonly "$RO.*(read-only|permission|denied)|(read-only|permission|denied).*$RO"
[[ -z "$(ls -A "$RO")" ]] || fail "something was written to the read-only filesystem"

# (b) A 4 MiB filesystem for a 12 MiB torrent.
FULL="$E2E_TMP/full"
mkdir -p "$FULL"
mount -t tmpfs -o size=4m tmpfs "$FULL" || fail "second tmpfs mount failed"
track_mount "$FULL"
dl full 60 -t "$E2E_TMP/file.torrent" -o "$FULL" --stats-json "$E2E_TMP/full.json"
expect_rc full 3
awk -v t="$DL_SECS" 'BEGIN { exit !(t < 30) }' || fail "the disk-full run took ${DL_SECS}s"
expect_one_error full "no space left"
stats_ok "$E2E_TMP/full.json" 's["result"] != "complete"' "full: result is not complete"
