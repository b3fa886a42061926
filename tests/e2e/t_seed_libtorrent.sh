#!/usr/bin/env bash
# `ptorrent seed` alone serves libtorrent, announced to opentracker, 256 KiB
# pieces:
#  1. a multi-file torrent (~8 MiB: nested directories, an empty file, pieces
#     that span files) to scripts/lt_swarm.py leech, told ptorrent's port:
#     the tree is byte-identical, ptorrent's stats account for every byte it
#     sent, and SIGINT then stops the seed (exit 130); the leecher is told to
#     use encrypted (MSE) handshakes only (by default libtorrent alternates
#     between MSE and plain per attempt), so ptorrent must answer one;
#  2. a single file (8 MiB and a partial piece) seeded with --seed-ratio 1.0
#     to a libtorrent leecher that reads at 2 MiB/s: ptorrent must exit 0 by
#     itself after one copy, and that copy must reach the leecher whole (the
#     bytes still in the sockets when the ratio is reached are not lost).
# timeout: 150
set -euo pipefail
. "$(dirname "$0")/lib_seed.sh"
need_ptorrent
need_cmd opentracker

start_opentracker "$E2E_TMP/ot"

# The seed's directory (the torrents' save path): one.bin and tree/.
SEED="$E2E_TMP/seed"
make_single "$SEED" one.bin
make_tree "$SEED/tree"

# publish NAME PATH: $E2E_TMP/NAME.torrent of PATH on the tracker; sets IH
# and SIZE.
publish() {
    mk_torrent "$E2E_TMP/$1.torrent" 262144 "$2" "$ANNOUNCE_URL"
    IH=$(lt_infohash "$E2E_TMP/$1.torrent")
    SIZE=$("$PY" -c 'import sys, libtorrent as lt
print(lt.torrent_info(sys.argv[1]).total_size())' "$E2E_TMP/$1.torrent")
    opentracker_add_hash "$IH"
}

# 1. A tree, to lt_swarm.py, seeding until SIGINT.
publish tree "$SEED/tree"
start_pt_seed seed-tree "$E2E_TMP/tree.torrent" "$SEED"
ot_wait_seeders "$IH" 1
t0=$(now)
rc=0
run_waited 90 "$PY" "$E2E_SCRIPTS/lt_swarm.py" leech --torrent "$E2E_TMP/tree.torrent" \
    --out "$E2E_TMP/tree-out" --peer "127.0.0.1:$PTS_PORT" --timeout 80 --encryption forced \
    >"$E2E_TMP/lt-tree.log" 2>&1 || rc=$?
log "libtorrent leech (tree): exit $rc in $(elapsed "$t0")s"
if ((rc != 0)); then
    tail -n 20 "$E2E_TMP/lt-tree.log" >&2
    dl_show seed-tree
    fail "tree: libtorrent did not download from ptorrent (exit $rc)"
fi
assert_tree_eq "$SEED/tree" "$E2E_TMP/tree-out/tree"
[[ -f "$E2E_TMP/tree-out/tree/a/empty.dat" ]] || fail "libtorrent did not create the empty file"
pt_stop seed-tree "$PTS_PID" INT 130
J="$E2E_TMP/seed-tree.json"
stats_ok "$J" 's["command"] == "seed" and s["result"] == "interrupted"' "seed result after SIGINT"
stats_ok "$J" "s['bytes_uploaded'] >= $SIZE and s['bytes_downloaded'] == 0" \
    "a whole copy uploaded, nothing downloaded"
stats_ok "$J" "max(p['uploaded'] for p in s['peers']) >= $SIZE" "one peer (libtorrent) got every byte"
stats_ok "$J" "sum(p['uploaded'] for p in s['peers']) == s['bytes_uploaded']" "per-peer uploads add up"
stats_ok "$J" 'not any(p["banned"] for p in s["peers"])' "nobody banned"
stats_ok "$J" "s['encrypted_handshakes'] >= 1" "libtorrent's encrypted handshake answered"
# Serving leaves the seed's data as it was.
assert_tree_eq "$SEED/tree" "$E2E_TMP/tree-out/tree"
log "tree: uploaded $(stats_get "$J" 's["bytes_uploaded"]') of $SIZE bytes"

# 2. A single file with --seed-ratio 1.0, to a leecher that reads slowly.
publish single "$SEED/one.bin"
start_pt_seed seed-single "$E2E_TMP/single.torrent" "$SEED" --seed-ratio 1.0
t0=$(now)
start_slow_leecher lt-single "$E2E_TMP/single.torrent" "$E2E_TMP/single-out" \
    "127.0.0.1:$PTS_PORT" 2048
# Until the leecher ends; once the seed has gone it has 10 s to read what
# was in flight.
seed_gone=
for ((i = 0; i < 900; i++)); do
    _e2e_alive "$SL_PID" || break
    if [[ -z "$seed_gone" ]] && ! _e2e_alive "$PTS_PID"; then
        seed_gone=$i
        log "seed-single exited while the leecher runs"
    fi
    [[ -z "$seed_gone" ]] || ((i - seed_gone < 100)) || break
    sleep 0.1
done
if ! wait_pid_exit "$SL_PID" 1 >"$E2E_TMP/lt-single.rc"; then
    tail -n 3 "$E2E_TMP/lt-single.log" >&2
    [[ -s "$E2E_TMP/seed-single.json" ]] && { cat "$E2E_TMP/seed-single.json" >&2; echo >&2; }
    fail "single: ptorrent seed --seed-ratio 1.0 exited, counting $(stats_get \
        "$E2E_TMP/seed-single.json" 's["bytes_uploaded"]' 2>/dev/null || echo '?') of $SIZE bytes \
uploaded, but libtorrent still lacked data 10 s later ($(tail -n 1 "$E2E_TMP/lt-single.log"))"
fi
untrack_pid "$SL_PID"
rc=$(<"$E2E_TMP/lt-single.rc")
log "libtorrent leech (single): exit $rc in $(elapsed "$t0")s"
((rc == 0)) || { cat "$E2E_TMP/lt-single.log" >&2; dl_show seed-single; fail "single: leecher exit $rc"; }
assert_cmp "$SEED/one.bin" "$E2E_TMP/single-out/one.bin"
pt_wait seed-single "$PTS_PID" 20
[[ "$PT_RC" == 0 ]] || { dl_show seed-single; fail "seed --seed-ratio 1.0 exited $PT_RC, expected 0"; }
J="$E2E_TMP/seed-single.json"
stats_ok "$J" 's["command"] == "seed" and s["result"] == "complete"' "seed result"
stats_ok "$J" "s['bytes_uploaded'] >= $SIZE and s['bytes_downloaded'] == 0" \
    "one copy uploaded, nothing downloaded"
log "single: uploaded $(stats_get "$J" 's["bytes_uploaded"]') of $SIZE bytes"
