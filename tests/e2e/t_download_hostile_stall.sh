#!/usr/bin/env bash
# A peer that unchokes, takes requests and then never sends a byte (fake peer
# --mode stall) beside an honest libtorrent seeder limited to 1 MiB/s (the
# 8 MiB download takes ~8 s, longer than the timeout): with --peer-timeout 5
# ptorrent drops the fake as snubbed after ~5 s, its blocks go to the seeder,
# and the download completes byte-identical well before a minute.
# timeout: 120
set -euo pipefail
. "$(dirname "$0")/lib_dl.sh"
need_ptorrent
need_cmd opentracker

hostile_download stall 1024 --peer-timeout 5
grep -q ' request ' "$FAKE_LOG" || fail "the fake was never sent a request: the test proved nothing"
awk -v t="$DL_SECS" 'BEGIN { exit !(t < 40) }' || fail "the download took ${DL_SECS}s with a stalled peer"
peer_log_has "$HOSTILE_ADDR" 'disconnected: .*(snub|timed? ?out|no requested data)' ||
    fail "the log does not say the stalled fake was dropped (--peer-timeout 5, download ${DL_SECS}s)"
