#!/usr/bin/env bash
# `ptorrent seed` alone serves aria2c: a single file (8 MiB and a partial
# piece) and a multi-file tree (~8 MiB, nested directories, an empty file),
# 256 KiB pieces. aria2c is given only the .torrent: it finds ptorrent
# through opentracker, downloads everything and exits at completion
# (--seed-time=0). The data is byte-identical, ptorrent's stats show the
# whole torrent uploaded and nothing downloaded, and SIGINT stops the seed
# (exit 130). aria2c opens with an encrypted (MSE) handshake, which ptorrent
# answers (its stats count it); the tree is served a second time to an
# aria2c that refuses plain handshakes (--bt-require-crypto), so only the
# MSE path can serve it.
# timeout: 150
set -euo pipefail
. "$(dirname "$0")/lib_seed.sh"
need_ptorrent
need_cmd opentracker aria2c

start_opentracker "$E2E_TMP/ot"
SEED="$E2E_TMP/seed"
make_single "$SEED" one.bin
make_tree "$SEED/tree"

# serve NAME PATH [ARIA2C_OPTION...]: ptorrent seeds a torrent of PATH;
# aria2c downloads it into $E2E_TMP/NAME-out.
serve() {
    local name=$1 path=$2 ih size rc=0 t0
    shift 2
    mk_torrent "$E2E_TMP/$name.torrent" 262144 "$path" "$ANNOUNCE_URL"
    ih=$(lt_infohash "$E2E_TMP/$name.torrent")
    size=$("$PY" -c 'import sys, libtorrent as lt
print(lt.torrent_info(sys.argv[1]).total_size())' "$E2E_TMP/$name.torrent")
    opentracker_add_hash "$ih"
    start_pt_seed "seed-$name" "$E2E_TMP/$name.torrent" "$SEED"
    # aria2c's first announce must already list ptorrent.
    ot_wait_seeders "$ih" 1
    t0=$(now)
    aria2_leech "aria-$name" "$E2E_TMP/$name.torrent" "$E2E_TMP/$name-out" 90 "$@" || rc=$?
    log "aria2c ($name): exit $rc in $(elapsed "$t0")s"
    if ((rc != 0)); then
        tail -n 20 "$E2E_TMP/aria-$name.log" >&2
        dl_show "seed-$name"
        fail "$name: aria2c did not download from ptorrent (exit $rc)"
    fi
    pt_stop "seed-$name" "$PTS_PID" INT 130
    local j="$E2E_TMP/seed-$name.json"
    stats_ok "$j" "s['bytes_uploaded'] >= $size and s['bytes_downloaded'] == 0" \
        "$name: a whole copy uploaded, nothing downloaded"
    stats_ok "$j" "sum(p['uploaded'] for p in s['peers']) == s['bytes_uploaded']" \
        "$name: per-peer uploads add up"
    stats_ok "$j" 'not any(p["banned"] for p in s["peers"])' "$name: nobody banned"
    stats_ok "$j" "s['encrypted_handshakes'] >= 1" "$name: aria2c's encrypted handshake answered"
    log "$name: ptorrent uploaded $(stats_get "$j" 's["bytes_uploaded"]') of $size bytes to" \
        "$(stats_get "$j" '[(p["address"], p["uploaded"]) for p in s["peers"] if p["uploaded"]]')"
}

serve single "$SEED/one.bin"
assert_cmp "$SEED/one.bin" "$E2E_TMP/single-out/one.bin"

serve tree "$SEED/tree"
assert_tree_eq "$SEED/tree" "$E2E_TMP/tree-out/tree"

serve crypto "$SEED/tree" --bt-require-crypto=true
assert_tree_eq "$SEED/tree" "$E2E_TMP/crypto-out/tree"
