#!/usr/bin/env bash
# `ptorrent download` fetches single-file torrents from a libtorrent seeder
# found through opentracker, for piece sizes 16 KiB, 256 KiB and 4 MiB; each
# size ends in a partial piece (and a partial block), the case where off-by-one
# errors in piece and block lengths show. Each run exits 0, the file is
# byte-identical and --stats-json says "complete" with every byte accounted.
# timeout: 180
set -euo pipefail
. "$(dirname "$0")/lib_dl.sh"
need_ptorrent
need_cmd opentracker

DATA="$E2E_TMP/data"
start_opentracker "$E2E_TMP/ot"

# NAME PIECE_BYTES SIZE_BYTES
CASES=(
    "p16k.bin 16384 $((3 * 1024 * 1024 + 123))"
    "p256k.bin 262144 $((20 * 1024 * 1024 + 7))"
    "p4m.bin 4194304 $((24 * 1024 * 1024 + 5))"
)

for c in "${CASES[@]}"; do
    read -r name piece size <<<"$c"
    # A directory per case: the seeder's save path holds only its file.
    make_random_file "$DATA/$name/$name" "$size"
    mk_torrent "$E2E_TMP/$name.torrent" "$piece" "$DATA/$name/$name" "$ANNOUNCE_URL"
    ih=$(lt_infohash "$E2E_TMP/$name.torrent")
    opentracker_add_hash "$ih"
    start_lt_seeders "$E2E_TMP/$name.torrent" "$DATA/$name" 1
    ot_wait_seeders "$ih" 1

    dl "$name" 90 -t "$E2E_TMP/$name.torrent" -o "$E2E_TMP/out" -v \
        --stats-json "$E2E_TMP/$name.json"
    expect_rc "$name" 0
    assert_cmp "$DATA/$name/$name" "$E2E_TMP/out/$name"
    stats_ok "$E2E_TMP/$name.json" 's["result"] == "complete"' "result of $name"
    stats_ok "$E2E_TMP/$name.json" "s['total_size'] == $size and s['bytes_downloaded'] >= $size" \
        "sizes of $name"
    stats_ok "$E2E_TMP/$name.json" 's["pieces_failed"] == 0' "no failed pieces for $name"
    stats_ok "$E2E_TMP/$name.json" \
        '0 < s["cpu_store_seconds"] <= s["cpu_user_seconds"] + s["cpu_system_seconds"] + 0.01' \
        "CPU in write calls of $name counted, and part of the total"

    # This seeder is done; the next case gets its own.
    kill -TERM "$LT_SEED_PID"
    wait_pid_exit "$LT_SEED_PID" 10 >/dev/null || fail "lt_swarm.py ignored TERM"
    untrack_pid "$LT_SEED_PID"
done
log "all piece sizes downloaded"
