#!/usr/bin/env bash
# `ptorrent seed` alone serves transmission-cli 3.00: a single file (8 MiB
# and a partial piece) with transmission's encryption "tolerated", and a
# multi-file tree (~8 MiB, nested directories, an empty file) with
# "preferred"; 256 KiB pieces, announced to opentracker. transmission drops
# loopback peers handed out by a tracker, so ptorrent is told to dial it
# (--peer); it must speak a plain handshake, which transmission accepts in
# both modes. transmission's -f script marks completion; the data is
# byte-identical (but for the empty file, which transmission 3.00 never
# creates) and ptorrent's stats show the whole torrent uploaded to it.
# timeout: 150
set -euo pipefail
. "$(dirname "$0")/lib_seed.sh"
need_ptorrent
need_cmd opentracker transmission-cli

start_opentracker "$E2E_TMP/ot"
SEED="$E2E_TMP/seed"
make_single "$SEED" one.bin
make_tree "$SEED/tree"

# serve NAME PATH ENCRYPTION: transmission-cli (encryption 0 tolerated, 1
# preferred) waits for a torrent of PATH in $E2E_TMP/NAME-out; ptorrent
# seeds it and dials transmission.
serve() {
    local name=$1 path=$2 enc=$3 ih size t0 i
    mk_torrent "$E2E_TMP/$name.torrent" 262144 "$path" "$ANNOUNCE_URL"
    ih=$(lt_infohash "$E2E_TMP/$name.torrent")
    size=$("$PY" -c 'import sys, libtorrent as lt
print(lt.torrent_info(sys.argv[1]).total_size())' "$E2E_TMP/$name.torrent")
    opentracker_add_hash "$ih"
    start_transmission "tr-$name" "$E2E_TMP/$name.torrent" "$E2E_TMP/$name-out" "$enc"
    t0=$(now)
    start_pt_seed "seed-$name" "$E2E_TMP/$name.torrent" "$SEED" --peer "127.0.0.1:$TR_PORT"
    for ((i = 0; i < 900; i++)); do
        [[ -s "$TR_DONE" ]] && break
        _e2e_alive "$TR_PID" || break
        _e2e_alive "$PTS_PID" || break
        sleep 0.1
    done
    if [[ ! -s "$TR_DONE" ]]; then
        tail -n 20 "$E2E_TMP/tr-$name.log" >&2
        dl_show "seed-$name"
        fail "$name: transmission-cli did not complete from ptorrent (encryption $enc)"
    fi
    log "transmission ($name, encryption $enc): complete in $(elapsed "$t0")s"
    stop_transmission
    pt_stop "seed-$name" "$PTS_PID" INT 130
    local j="$E2E_TMP/seed-$name.json"
    stats_ok "$j" "s['bytes_uploaded'] >= $size and s['bytes_downloaded'] == 0" \
        "$name: a whole copy uploaded, nothing downloaded"
    stats_ok "$j" "any(p['address'] == '127.0.0.1:$TR_PORT' and p['uploaded'] >= $size for p in s['peers'])" \
        "$name: transmission (dialled at 127.0.0.1:$TR_PORT) got every byte"
    stats_ok "$j" 'not any(p["banned"] for p in s["peers"])' "$name: nobody banned"
}

serve single "$SEED/one.bin" 0
assert_cmp "$SEED/one.bin" "$E2E_TMP/single-out/one.bin"

serve tree "$SEED/tree" 1
# transmission 3.00 does not create zero-length files: leave a/empty.dat out.
diff -r --no-dereference --exclude=empty.dat -- "$SEED/tree" "$E2E_TMP/tree-out/tree" >&2 ||
    fail "trees differ: $SEED/tree $E2E_TMP/tree-out/tree"
