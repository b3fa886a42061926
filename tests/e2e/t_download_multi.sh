#!/usr/bin/env bash
# `ptorrent download` fetches a multi-file torrent (nested directories, an
# empty file, files smaller than a block, pieces that span files) from a mixed
# swarm found through opentracker: three libtorrent seeders and one aria2c
# seeder. Every file comes out byte-identical, the empty file exists, and the
# stats show bytes from at least two peers (the swarm is really used, not just
# the first peer that answers).
# timeout: 180
set -euo pipefail
. "$(dirname "$0")/lib_dl.sh"
need_ptorrent
need_cmd opentracker aria2c

# The seeders' save path is $SEED; the torrent's top directory is $SEED/tree.
SEED="$E2E_TMP/seed"
T="$SEED/tree"
make_random_file "$T/big1.bin" $((8 * 1024 * 1024 + 3))
make_random_file "$T/a/b/c/deep.bin" $((6 * 1024 * 1024 + 1))
make_random_file "$T/a/mid.bin" $((5 * 1024 * 1024 - 17))
make_random_file "$T/a/b/one-byte.bin" 1
make_random_file "$T/thousand.bin" 1000
make_random_file "$T/z/small.bin" 16383
make_random_file "$T/z/last.bin" $((4 * 1024 * 1024 + 511))
: >"$T/a/empty.dat"

start_opentracker "$E2E_TMP/ot"
mk_torrent "$E2E_TMP/tree.torrent" 262144 "$T" "$ANNOUNCE_URL"
ih=$(lt_infohash "$E2E_TMP/tree.torrent")
opentracker_add_hash "$ih"

start_lt_seeders "$E2E_TMP/tree.torrent" "$SEED" 3
start_aria2_seeder "$E2E_TMP/tree.torrent" "$SEED"
# aria2c announces only after its hash check: wait until the tracker has all
# four, so ptorrent's first announce lists them all.
ot_wait_seeders "$ih" 4

dl multi 120 -t "$E2E_TMP/tree.torrent" -o "$E2E_TMP/out" -v --max-peers 20 \
    --stats-json "$E2E_TMP/multi.json"
expect_rc multi 0
[[ -f "$E2E_TMP/out/tree/a/empty.dat" && ! -s "$E2E_TMP/out/tree/a/empty.dat" ]] ||
    fail "the zero-byte file is missing or not empty"
assert_tree_eq "$T" "$E2E_TMP/out/tree"

S="$E2E_TMP/multi.json"
stats_ok "$S" 's["result"] == "complete" and s["pieces_failed"] == 0' "complete, no failed piece"
stats_ok "$S" 'sum(p["downloaded"] for p in s["peers"]) >= s["total_size"]' "per-peer bytes add up"
stats_ok "$S" 'sum(1 for p in s["peers"] if p["downloaded"] > 0) >= 2' "bytes from two peers or more"
log "peers used: $(stats_get "$S" '[(p["address"], p["downloaded"]) for p in s["peers"] if p["downloaded"]]')"
# Which kind of seeder served is informative, not asserted: on a fast
# loopback one client may answer everything before another is unchoked.
if [[ "$(stats_get "$S" "any(p['address'] == '127.0.0.1:$ARIA_PORT' and p['downloaded'] > 0 for p in s['peers'])")" == True ]]; then
    log "aria2c served some of the data"
else
    log "aria2c served nothing this time"
fi

# Interoperation with aria2c on its own: stop the libtorrent seeders, so the
# tracker's list (re-announced by aria2c) leaves ptorrent only aria2c to use.
kill -TERM "$LT_SEED_PID"
wait_pid_exit "$LT_SEED_PID" 10 >/dev/null || fail "lt_swarm.py ignored TERM"
untrack_pid "$LT_SEED_PID"
dl aria 90 -t "$E2E_TMP/tree.torrent" -o "$E2E_TMP/out-aria" -v \
    --stats-json "$E2E_TMP/aria.json"
expect_rc aria 0
assert_tree_eq "$T" "$E2E_TMP/out-aria/tree"
stats_ok "$E2E_TMP/aria.json" \
    "[p['downloaded'] for p in s['peers'] if p['downloaded']] == [s['total_size']] and s['peers'][0]['address'] == '127.0.0.1:$ARIA_PORT'" \
    "every byte from aria2c"
