#!/usr/bin/env bash
# A peer that answers every request with random bytes (tests/fake_peer.py
# --mode wrong-bytes) beside an honest, slower libtorrent seeder: the pieces
# it alone sent fail the hash check, ptorrent bans it (stats-json banned:true
# for its address, and the log says so), drops the connection, and still
# completes the download byte-identical from the honest seeder.
# timeout: 120
set -euo pipefail
. "$(dirname "$0")/lib_dl.sh"
need_ptorrent
need_cmd opentracker

hostile_download wrong-bytes 4096
grep -q ' sent-piece ' "$FAKE_LOG" || fail "the fake was never asked for a block: the test proved nothing"

S="$E2E_TMP/hostile.json"
stats_ok "$S" "any(p['address'] == '$HOSTILE_ADDR' and p['banned'] and p['hash_failures'] > 0 for p in s['peers'])" \
    "the fake is banned with hash failures"
stats_ok "$S" "all(not p['banned'] for p in s['peers'] if p['address'] != '$HOSTILE_ADDR')" \
    "the honest seeder is not banned"
stats_ok "$S" 's["pieces_failed"] > 0 and s["bytes_wasted"] > 0' "the failures are counted"
peer_log_has "$HOSTILE_ADDR" 'banned' || fail "the log does not say the fake was banned"
peer_log_has "$HOSTILE_ADDR" 'disconnected: banned' || fail "the banned fake was not disconnected"
log "fake: $(stats_get "$S" "[(p['hash_failures'], p['downloaded']) for p in s['peers'] if p['address'] == '$HOSTILE_ADDR'][0]") (hash failures, bytes); wasted $(stats_get "$S" 's["bytes_wasted"]') bytes"
