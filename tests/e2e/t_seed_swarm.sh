#!/usr/bin/env bash
# A swarm of ptorrents only: one `ptorrent seed` limited to 512 KiB/s
# (--max-upload-rate) and three `ptorrent download` leechers started together
# on an 8 MiB torrent of 64 KiB pieces, all finding each other through
# opentracker. The seed alone would need 48 s for three copies; the leechers
# must trade pieces among themselves (accepting each other's connections,
# unchoking each other, serving verified pieces). Checks:
#  - every leecher exits 0 with byte-identical data;
#  - each leecher uploaded to the others (its stats, peers with uploaded > 0;
#    the seed never downloads, so they are leechers);
#  - bytes are conserved: what the seed and the leechers uploaded covers what
#    the leechers downloaded, and the seed sent less than three copies;
#  - the seed kept to its upload limit.
# timeout: 180
set -euo pipefail
. "$(dirname "$0")/lib_seed.sh"
need_ptorrent
need_cmd opentracker

RATE_KIB=512
SIZE=$((8 * 1024 * 1024))
make_random_file "$E2E_TMP/seed/file.bin" "$SIZE"
start_opentracker "$E2E_TMP/ot"
mk_torrent "$E2E_TMP/file.torrent" 65536 "$E2E_TMP/seed/file.bin" "$ANNOUNCE_URL"
ih=$(lt_infohash "$E2E_TMP/file.torrent")
opentracker_add_hash "$ih"

start_pt_seed seed "$E2E_TMP/file.torrent" "$E2E_TMP/seed" --max-upload-rate "$RATE_KIB"
ot_wait_seeders "$ih" 1

# The leechers, each on its own port and directory.
declare -A LPID
t0=$(now)
for n in 1 2 3; do
    pt_bg "leech$n" download -t "$E2E_TMP/file.torrent" -o "$E2E_TMP/out$n" --port 0 \
        -v --stats-json "$E2E_TMP/leech$n.json"
    LPID[$n]=$BG_PID
done
log "leechers: pids ${LPID[*]}"

# Wait for all three (bounded: at 512 KiB/s the seed alone needs 16 s a copy).
for ((i = 0; i < 1200; i++)); do
    live=0
    for n in 1 2 3; do _e2e_alive "${LPID[$n]}" && live=1; done
    ((live)) || break
    sleep 0.1
done
swarm_secs=$(elapsed "$t0")
for n in 1 2 3; do
    pt_wait "leech$n" "${LPID[$n]}" 1
    [[ "$PT_RC" == 0 ]] || { dl_show "leech$n"; fail "leech$n exited $PT_RC"; }
    assert_cmp "$E2E_TMP/seed/file.bin" "$E2E_TMP/out$n/file.bin"
    stats_ok "$E2E_TMP/leech$n.json" 's["result"] == "complete" and s["pieces_failed"] == 0' \
        "leech$n complete, no failed piece"
done
log "all three leechers done in ${swarm_secs}s"
pt_stop seed "$PTS_PID" INT 130

# Figures from the four stats files.
"$PY" - "$E2E_TMP" "$SIZE" "$RATE_KIB" "$swarm_secs" >"$E2E_TMP/figures.txt" <<'PYEOF' ||
import json, sys
tmp, size, rate, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
seed = json.load(open(tmp + "/seed.json"))
leech = [json.load(open("%s/leech%d.json" % (tmp, n))) for n in (1, 2, 3)]
up = [l["bytes_uploaded"] for l in leech]
down = [l["bytes_downloaded"] for l in leech]
print("seed uploaded %d (%.2f copies) in a swarm of %.1f s" % (
    seed["bytes_uploaded"], seed["bytes_uploaded"] / size, secs))
for n, l in enumerate(leech, 1):
    print("leech%d: downloaded %d, uploaded %d to %s" % (n, l["bytes_downloaded"], l["bytes_uploaded"],
          [(p["address"], p["uploaded"]) for p in l["peers"] if p["uploaded"]]))
bad = []
if seed["bytes_downloaded"] != 0:
    bad.append("the seed downloaded %d bytes" % seed["bytes_downloaded"])
for n, l in enumerate(leech, 1):
    if l["bytes_downloaded"] < size:
        bad.append("leech%d downloaded only %d bytes" % (n, l["bytes_downloaded"]))
    if not any(p["uploaded"] > 0 for p in l["peers"]):
        bad.append("leech%d uploaded nothing to the other leechers" % n)
    if sum(p["uploaded"] for p in l["peers"]) != l["bytes_uploaded"]:
        bad.append("leech%d: per-peer uploads do not add up" % n)
if seed["bytes_uploaded"] + sum(up) < sum(down):
    bad.append("uploads (%d + %d) do not cover downloads (%d)" % (seed["bytes_uploaded"], sum(up), sum(down)))
if seed["bytes_uploaded"] >= 3 * size:
    bad.append("the seed sent three copies or more: the leechers did not share")
# The limit over the time the swarm ran, with 3 s of slack for start and burst.
limit = rate * 1024 * (secs + 3)
if seed["bytes_uploaded"] > limit:
    bad.append("the seed sent %d bytes in %.1f s, over %d KiB/s" % (seed["bytes_uploaded"], secs, rate))
for b in bad:
    print("BAD: " + b)
sys.exit(1 if bad else 0)
PYEOF
    { cat "$E2E_TMP/figures.txt" >&2; fail "swarm figures: $(grep '^BAD' "$E2E_TMP/figures.txt" | tr '\n' ' ')"; }
while read -r line; do log "$line"; done <"$E2E_TMP/figures.txt"
