#!/usr/bin/env bash
# `ptorrent seed` alone serves libtorrent: a single-file torrent (8 MiB and a
# partial piece) and a multi-file one (nested directories, an empty file,
# pieces that span files), 256 KiB pieces, announced to opentracker. For each,
# a libtorrent leecher (scripts/lt_swarm.py leech, told ptorrent's port and
# the tracker) downloads everything from ptorrent, the only seeder: the data
# is byte-identical and ptorrent's stats account for every byte it sent.
# The single-file seed runs with --seed-ratio 1.0 and must exit 0 by itself
# once it has uploaded one copy, without cutting off the leecher's last
# blocks; the multi-file one runs until SIGINT (exit 130).
# timeout: 150
set -euo pipefail
. "$(dirname "$0")/lib_seed.sh"
need_ptorrent
need_cmd opentracker

start_opentracker "$E2E_TMP/ot"

# The seeder's directory: single/one.bin and tree/...
SEED="$E2E_TMP/seed"
make_single "$SEED" one.bin
make_tree "$SEED/tree"

# serve NAME PATH [SEED_ARGS...]: make a torrent of PATH, seed it with
# ptorrent, and have libtorrent download it into $E2E_TMP/NAME-out.
serve() {
    local name=$1 path=$2 ih size
    shift 2
    mk_torrent "$E2E_TMP/$name.torrent" 262144 "$path" "$ANNOUNCE_URL"
    ih=$(lt_infohash "$E2E_TMP/$name.torrent")
    opentracker_add_hash "$ih"
    start_pt_seed "seed-$name" "$E2E_TMP/$name.torrent" "$SEED" "$@"
    ot_wait_seeders "$ih" 1
    size=$("$PY" -c 'import sys, libtorrent as lt
print(lt.torrent_info(sys.argv[1]).total_size())' "$E2E_TMP/$name.torrent")

    # The leecher runs in the background so that a seed which leaves early
    # (by --seed-ratio) is noticed in seconds, not at the leecher's timeout.
    local t0 lpid rc i
    t0=$(now)
    "$PY" "$E2E_SCRIPTS/lt_swarm.py" leech --torrent "$E2E_TMP/$name.torrent" \
        --out "$E2E_TMP/$name-out" --peer "127.0.0.1:$PTS_PORT" --timeout 80 \
        </dev/null >"$E2E_TMP/lt-$name.log" 2>&1 &
    lpid=$!
    track_pid "$lpid"
    for ((i = 0; i < 900; i++)); do
        _e2e_alive "$lpid" || break
        # The seed is gone: the leecher has 10 s to finish what is in flight.
        if ! _e2e_alive "$PTS_PID" && ! wait_pid_exit "$lpid" 10 >/dev/null; then
            tail -n 5 "$E2E_TMP/lt-$name.log" >&2
            dl_show "seed-$name"
            [[ -s "$E2E_TMP/seed-$name.json" ]] && cat "$E2E_TMP/seed-$name.json" >&2
            fail "$name: ptorrent seed exited while libtorrent still lacked data"
        fi
        sleep 0.1
    done
    rc=0
    wait_pid_exit "$lpid" 1 >"$E2E_TMP/lt-$name.rc" || fail "$name: libtorrent leech still running"
    rc=$(<"$E2E_TMP/lt-$name.rc")
    untrack_pid "$lpid"
    log "libtorrent leech ($name): exit $rc in $(elapsed "$t0")s"
    if ((rc != 0)); then
        tail -n 20 "$E2E_TMP/lt-$name.log" >&2
        dl_show "seed-$name"
        fail "$name: libtorrent did not download from ptorrent (exit $rc)"
    fi
    SERVE_SIZE=$size
}

# 1. A tree, seeding until SIGINT.
serve tree "$SEED/tree"
assert_tree_eq "$SEED/tree" "$E2E_TMP/tree-out/tree"
[[ -f "$E2E_TMP/tree-out/tree/a/empty.dat" ]] || fail "libtorrent did not create the empty file"
pt_stop seed-tree "$PTS_PID" INT 130
J="$E2E_TMP/seed-tree.json"
stats_ok "$J" "s['bytes_uploaded'] >= $SERVE_SIZE and s['bytes_downloaded'] == 0" \
    "a whole copy uploaded, nothing downloaded"
stats_ok "$J" "max(p['uploaded'] for p in s['peers']) >= $SERVE_SIZE" \
    "one peer (libtorrent) got every byte"
stats_ok "$J" 'not any(p["banned"] for p in s["peers"])' "nobody banned"
# The seed's data is untouched by serving.
assert_tree_eq "$SEED/tree" "$E2E_TMP/tree-out/tree"
log "tree: uploaded $(stats_get "$J" 's["bytes_uploaded"]') of $SERVE_SIZE bytes"

# 2. Single file, --seed-ratio 1.0: ptorrent stops by itself after one copy,
# and that copy must have reached the leecher whole.
serve single "$SEED/one.bin" --seed-ratio 1.0
assert_cmp "$SEED/one.bin" "$E2E_TMP/single-out/one.bin"
pt_wait seed-single "$PTS_PID" 20
[[ "$PT_RC" == 0 ]] || { dl_show seed-single; fail "seed --seed-ratio 1.0 exited $PT_RC, expected 0"; }
J="$E2E_TMP/seed-single.json"
stats_ok "$J" 's["command"] == "seed" and s["result"] == "complete"' "seed result"
stats_ok "$J" "s['bytes_uploaded'] >= $SERVE_SIZE and s['bytes_downloaded'] == 0" \
    "one copy uploaded, nothing downloaded"
stats_ok "$J" "sum(p['uploaded'] for p in s['peers']) == s['bytes_uploaded']" \
    "per-peer uploads add up"
log "single: uploaded $(stats_get "$J" 's["bytes_uploaded"]') of $SERVE_SIZE bytes"
