#!/usr/bin/env bash
# Scale: `ptorrent download --max-peers 200` of 64 MiB from 100 libtorrent
# seeders found through opentracker (one lt_swarm.py process; the data is
# hash-checked once and the other 99 sessions trust that check, so they start
# in seconds). Checks:
#  - the file comes out byte-identical, and many distinct peers sent data
#    (peers_used >= 20; no more connected at once than --max-peers);
#  - ptorrent really ran a thread per peer: its thread count, sampled from
#    /proc/PID/task while it downloads, rose at least 20 above the baseline,
#    and never passed --max-peers + THREADS_SLACK;
#  - no thread leaks: after completion (it keeps seeding, --seed-time 1) the
#    seed-to-seed connections are closed ("both sides have everything") and
#    the thread count is back to the baseline within 10 s;
#  - peak RSS (--stats-json peak_rss_bytes) stays under RSS_LIMIT_MIB;
#  - bytes_wasted stays under WASTE_LIMIT_MIB.
# The figures (time, rate, peak threads, RSS) are logged for comparison with
# fewer seeders.
# timeout: 120
set -euo pipefail
. "$(dirname "$0")/lib_seed.sh"
need_ptorrent
need_cmd opentracker
[[ -d /proc/self/task ]] || skip "no /proc/self/task: cannot count threads"

SEEDERS=100
MAX_PEERS=200
# Each seeder uploads at most this (KiB/s): 100 of them still give 50 MiB/s,
# but a few cannot finish the download alone before the others are
# connected, which they did under a sanitizer (peers_used 19, peak 28
# threads): the download must really spread over many peers.
SEEDER_RATE_KIB=512
SIZE=$((64 * 1024 * 1024))
# Threads besides the peer threads: main and the storage writer (the
# baseline, 2 today), and room for short-lived helpers (libcurl resolving
# the tracker; the resume recheck workers, which end before any peer
# starts). A leak of a handful per peer would still show: 100 peers.
THREADS_SLACK=8
# Peak RSS: the piece buffer pool is capped at 20 MiB (SESSION_POOL_BYTES,
# backed before the first peer starts), plus about 11 MiB of everything
# else, plus per-peer memory (thread stack pages touched, wire buffers:
# ~100-150 KiB each). Measured 37 MiB (48-49 MiB with the 32 MiB pool before,
# 65 MiB with 48 MiB). 64 MiB is issue 6's target; it still catches a
# per-peer cost that grew by ~0.15 MiB or a pool that is no longer capped.
RSS_LIMIT_MIB=64
# Wasted bytes (duplicates, blocks nobody wants): these seeders each choke us
# once early on and still send what they had queued. Those blocks stay ours
# for a while after the choke (PEER_LATE_GRACE_MS) instead of being asked of
# other peers at once: measured 7-8 MiB (11 under TSan) against 31-32 MiB
# when they went straight back to the picker.
WASTE_LIMIT_MIB=16

SEED="$E2E_TMP/seed"
make_random_file "$SEED/file.bin" "$SIZE"

# threads_of PID: how many threads PID has now (0 once it is gone). Bash
# globbing only, no fork: cheap enough to sample every 50 ms.
threads_of() {
    local t=("/proc/$1/task/"*)
    [[ -e "${t[0]}" ]] && echo "${#t[@]}" || echo 0
}

# 1. The baseline: ptorrent with no peers at all. A `ptorrent seed` of the
# same data (a hard link, so its .ptorrent/ stays out of the seeders' save
# path) from a torrent with no tracker: nothing to dial and nobody told to
# dial it. Its steady thread count is what the download must come back to
# once every peer is gone. Taken from a seed rather than from the download's
# first samples, which race with its start (1 thread before the writer
# starts, peers soon after the tracker answers).
mkdir -p "$E2E_TMP/base"
ln "$SEED/file.bin" "$E2E_TMP/base/file.bin"
mk_torrent "$E2E_TMP/notracker.torrent" 262144 "$SEED/file.bin"
start_pt_seed base "$E2E_TMP/notracker.torrent" "$E2E_TMP/base"
baseline=0
for ((i = 0; i < 5; i++)); do
    sleep 0.2
    n=$(threads_of "$PTS_PID")
    ((n > baseline)) && baseline=$n
done
pt_stop base "$PTS_PID" INT 130
((baseline >= 1)) || fail "could not count the threads of ptorrent seed"
log "baseline: ptorrent with no peers has $baseline threads"

# 2. The swarm.
start_opentracker "$E2E_TMP/ot"
mk_torrent "$E2E_TMP/file.torrent" 262144 "$SEED/file.bin" "$ANNOUNCE_URL"
ih=$(lt_infohash "$E2E_TMP/file.torrent")
opentracker_add_hash "$ih"
t0=$(now)
start_lt_seeders "$E2E_TMP/file.torrent" "$SEED" "$SEEDERS" --upload-rate "$SEEDER_RATE_KIB"
ot_wait_seeders "$ih" "$SEEDERS"
log "$SEEDERS seeders ready and listed in $(elapsed "$t0")s"

# 3. The download, watched. -v: completion is the "download complete" line
# (and the log names each peer, for a failure's diagnosis).
t0=$(now)
pt_bg dl download -t "$E2E_TMP/file.torrent" -o "$E2E_TMP/out" -v \
    --max-peers "$MAX_PEERS" --seed-time 1 --port "$(free_port)" \
    --stats-json "$E2E_TMP/dl.json"
pid=$BG_PID
peak=0
done_at=
# Every 50 ms for at most 60 s (on this 2-core machine the download takes
# about 1 s; peer threads live from their dial to completion).
for ((i = 0; i < 1200; i++)); do
    _e2e_alive "$pid" || { dl_show dl; fail "ptorrent exited before completing"; }
    n=$(threads_of "$pid")
    ((n > peak)) && peak=$n
    if grep -q 'download complete' "$E2E_TMP/dl.err"; then
        done_at=$(elapsed "$t0")
        break
    fi
    sleep 0.05
done
[[ -n "$done_at" ]] || { dl_show dl; fail "no 'download complete' after 60 s (peak $peak threads)"; }
log "download complete after ${done_at}s; peak $peak threads (baseline $baseline)"
assert_cmp "$SEED/file.bin" "$E2E_TMP/out/file.bin"

# 4. Back to the baseline: every seeder hangs up or is dropped ("both sides
# have everything"). Three samples in a row, so that a sample taken while a
# thread happens to be between two peers does not count. Every 0.2 s for at
# most 10 s.
back_at=
calm=0
for ((i = 0; i < 50; i++)); do
    n=$(threads_of "$pid")
    ((n > peak)) && peak=$n
    if ((n <= baseline)); then
        calm=$((calm + 1))
        if ((calm >= 3)); then
            back_at=$(elapsed "$t0")
            break
        fi
    else
        calm=0
    fi
    sleep 0.2
done
[[ -n "$back_at" ]] || {
    dl_show dl
    fail "thread count still $n 10 s after completion (baseline $baseline): a thread leak?"
}
log "thread count back to $n (baseline $baseline) at ${back_at}s"

# It would seed for a minute more: stop it; the stats are written at exit.
pt_stop dl "$pid" INT 130

S="$E2E_TMP/dl.json"
stats_ok "$S" 's["complete_seconds"] is not None and s["pieces_failed"] == 0' \
    "complete, no failed piece"
stats_ok "$S" 's["bytes_downloaded"] >= s["total_size"]' "every byte downloaded"
stats_ok "$S" 's["peers_used"] >= 20' "at least 20 distinct peers sent data"
stats_ok "$S" "s['peers_connected_max'] <= $MAX_PEERS" "at most --max-peers connected at once"
stats_ok "$S" "s['bytes_wasted'] < $WASTE_LIMIT_MIB * 1024 * 1024" "under $WASTE_LIMIT_MIB MiB wasted"
# A sanitizer's shadow memory and quarantine multiply RSS by design (seen:
# 113 MiB under ASan, 318 MiB under TSan): the bound holds for real builds.
# (not grep -q: ldd may then die of SIGPIPE, and pipefail fails the test)
if ldd "$PTORRENT" 2>/dev/null | grep -E 'lib[at]san' >/dev/null; then
    log "sanitizer build: peak RSS not checked"
else
    stats_ok "$S" "s['peak_rss_bytes'] < $RSS_LIMIT_MIB * 1024 * 1024" "peak RSS under $RSS_LIMIT_MIB MiB"
fi
((peak >= baseline + 20)) ||
    fail "peak thread count $peak: not 20 above the baseline $baseline (peer threads not seen)"
((peak <= MAX_PEERS + THREADS_SLACK)) ||
    fail "peak thread count $peak is above --max-peers $MAX_PEERS + $THREADS_SLACK"
log "figures: $(stats_get "$S" '"complete %.2fs, %.0f MiB/s, peers used %d, connected at most %d, wasted %.1f MiB, CPU %.2fs, peak RSS %.1f MiB" % (s["complete_seconds"], s["total_size"] / 2**20 / max(s["complete_seconds"], 1e-3), s["peers_used"], s["peers_connected_max"], s["bytes_wasted"] / 2**20, s["cpu_user_seconds"] + s["cpu_system_seconds"], s["peak_rss_bytes"] / 2**20)')"
