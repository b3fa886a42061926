#!/usr/bin/env bash
# A peer that answers the first request with a message "2 GiB long" (fake
# peer --mode oversize) beside an honest libtorrent seeder: ptorrent must not
# try to buffer it; it drops the peer with a reason in the -v log and still
# completes the download byte-identical.
# timeout: 120
set -euo pipefail
. "$(dirname "$0")/lib_dl.sh"
need_ptorrent
need_cmd opentracker

hostile_download oversize 4096
grep -q ' sent-oversize ' "$FAKE_LOG" || fail "the fake never sent its oversize message: the test proved nothing"
peer_log_has "$HOSTILE_ADDR" 'disconnected: .*(length|too (long|big|large)|over)' ||
    fail "the log does not say the fake was dropped for its message length"
stats_ok "$E2E_TMP/hostile.json" "all(p['downloaded'] == 0 for p in s['peers'] if p['address'] == '$HOSTILE_ADDR')" \
    "no bytes credited to the fake"
