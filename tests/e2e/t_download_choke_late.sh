#!/usr/bin/env bash
# A peer that chokes us with requests outstanding and then sends those blocks
# anyway (fake peer --mode choke-late; libtorrent seeders do this, with the
# blocks already in their send buffer): BEP 3 says the requests were
# dropped, so ptorrent gives them back to the picker, but blocks that still
# arrive and are still needed must be used, not thrown away. The fake is the
# only peer: every one of its late blocks is needed, so nothing is wasted.
# The fake is a seed, so ptorrent must never send it a HAVE (it has every
# piece; libtorrent, by default, does not send those either).
# timeout: 90
set -euo pipefail
. "$(dirname "$0")/lib_dl.sh"
need_ptorrent
need_cmd opentracker

tracked_file $((16 * 1024 * 1024))
start_fake_peer choke-late "$E2E_TMP/file.torrent" "$E2E_TMP/seed"

S="$E2E_TMP/late.json"
dl late 60 -t "$E2E_TMP/file.torrent" -o "$E2E_TMP/out" -v \
    --peer "127.0.0.1:$FAKE_PORT" --stats-json "$S"
expect_rc late 0
assert_cmp "$E2E_TMP/seed/file.bin" "$E2E_TMP/out/file.bin"
late=$(grep -c ' sent-late ' "$FAKE_LOG" || true)
((late > 0)) || fail "the fake sent no block after its choke: the test proved nothing"
grep -q ' choked ' "$FAKE_LOG" || fail "the fake never choked"
log "the fake choked, then sent $late requested blocks"
stats_ok "$S" 's["result"] == "complete" and s["pieces_failed"] == 0' "complete, no failed piece"
stats_ok "$S" 's["bytes_wasted"] == 0' "the blocks sent after the choke were used, none wasted"
stats_ok "$S" 's["bytes_downloaded"] == s["total_size"]' "every byte once"
haves=$(grep -c ' have ' "$FAKE_LOG" || true)
((haves == 0)) || fail "ptorrent sent $haves HAVE message(s) to a seed"
