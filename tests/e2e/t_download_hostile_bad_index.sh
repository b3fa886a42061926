#!/usr/bin/env bash
# A peer that sends PIECE messages for a piece index past the end of the
# torrent (fake peer --mode bad-index) beside an honest libtorrent seeder:
# ptorrent drops it with "piece index out of range" in the -v log, writes
# nothing out of bounds, and completes the download byte-identical.
# timeout: 120
set -euo pipefail
. "$(dirname "$0")/lib_dl.sh"
need_ptorrent
need_cmd opentracker

hostile_download bad-index 4096
grep -q ' sent-piece ' "$FAKE_LOG" || fail "the fake never sent a bad piece: the test proved nothing"
peer_log_has "$HOSTILE_ADDR" 'disconnected: .*index' ||
    fail "the log does not say the fake was dropped for its piece index"
stats_ok "$E2E_TMP/hostile.json" "all(p['downloaded'] == 0 for p in s['peers'] if p['address'] == '$HOSTILE_ADDR')" \
    "no bytes credited to the fake"
# Nothing was written past the file's end.
[[ $(stat -c %s "$E2E_TMP/out/file.bin") -eq $((8 * 1024 * 1024)) ]] || fail "output size changed"
