#!/usr/bin/env bash
# A peer that answers the handshake with another torrent's info hash (fake
# peer --mode wrong-hash) beside an honest libtorrent seeder: ptorrent drops
# it as a bad handshake, never counts it as a source, and completes the
# download byte-identical.
# timeout: 120
set -euo pipefail
. "$(dirname "$0")/lib_dl.sh"
need_ptorrent
need_cmd opentracker

hostile_download wrong-hash 4096
grep -q ' sent-wrong-hash ' "$FAKE_LOG" || fail "the fake never answered a handshake: the test proved nothing"
peer_log_has "$HOSTILE_ADDR" 'disconnected: bad handshake' ||
    fail "the log does not say the fake was dropped for a bad handshake"
peer_log_has "$HOSTILE_ADDR" 'info: connected' && fail "the log counts the fake as connected"
stats_ok "$E2E_TMP/hostile.json" "all(p['downloaded'] == 0 for p in s['peers'] if p['address'] == '$HOSTILE_ADDR')" \
    "no bytes credited to the fake"
