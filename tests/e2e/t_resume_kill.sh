#!/usr/bin/env bash
# Crash-safe resume: a 16 MiB download (256 KiB pieces) from one libtorrent
# seeder limited to 1 MiB/s is killed with SIGKILL three times, each after a
# random 1-4 s (the third: within 1.5 s after its resume file was written),
# and restarted into the same directory each time; the fourth run completes.
# Checks:
#  - the data is byte-identical;
#  - what was downloaded over all runs stays under 1.2x the torrent. A
#    SIGKILLed run writes no stats, so the measure is the seeder's own count
#    of payload bytes it uploaded (libtorrent's total_payload_upload, see
#    start_counting_seeder): the only source, so everything ptorrent received
#    in every run, killed ones included;
#  - each restart keeps what the killed run had verified: the last run
#    downloads less than the whole torrent;
#  - a restart after completion trusts the resume file, downloads nothing,
#    and exits 0 at once.
# The kill times come from RANDOM; the log names the seed to replay a run
# (E2E_RESUME_SEED=N).
# timeout: 180
set -euo pipefail
. "$(dirname "$0")/lib_seed.sh"
need_ptorrent

SEED_RANDOM=${E2E_RESUME_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
RANDOM=$SEED_RANDOM
log "kill times from RANDOM seed $SEED_RANDOM"

SIZE=$((16 * 1024 * 1024))
PIECE=262144
make_random_file "$E2E_TMP/seed/file.bin" "$SIZE"
# No tracker: ptorrent is told the seeder's address.
mk_torrent "$E2E_TMP/file.torrent" "$PIECE" "$E2E_TMP/seed/file.bin"
start_counting_seeder "$E2E_TMP/file.torrent" "$E2E_TMP/seed" 1024
OUT="$E2E_TMP/out"
ARGS=(-t "$E2E_TMP/file.torrent" -o "$OUT" --peer "127.0.0.1:$CS_PORT" -v)

RESUME_FILE="$OUT/.ptorrent/$(lt_infohash "$E2E_TMP/file.torrent").resume"
for k in 1 2 3; do
    ms=$((1000 + RANDOM % 3001))
    pt_bg "run$k" download "${ARGS[@]}" --port 0 --stats-json "$E2E_TMP/run$k.json"
    pid=$BG_PID
    if ((k == 3)); then
        # The resume file is written every 5 s: kill the third run soon
        # after it has been (re)written, so that a restart meets a resume
        # file that the data written since has made stale.
        ms=$((200 + RANDOM % 1301))
        rm -f "$RESUME_FILE"
        for ((i = 0; i < 100; i++)); do
            [[ -s "$RESUME_FILE" ]] && break
            sleep 0.1
        done
        [[ -s "$RESUME_FILE" ]] || { dl_show run3; fail "run3 wrote no resume file in 10 s"; }
    fi
    sleep "$(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 1000 }')"
    _e2e_alive "$pid" || { dl_show "run$k"; fail "run$k ended before its SIGKILL at ${ms} ms"; }
    kill -KILL "$pid"
    wait_pid_exit "$pid" 5 >"$E2E_TMP/run$k.rc" || fail "run$k survived SIGKILL"
    untrack_pid "$pid"
    tsan_check "run$k"
    [[ ! -e "$E2E_TMP/run$k.json" ]] || fail "run$k wrote stats although it was SIGKILLed"
    have=$(stat -c %s "$OUT/file.bin" 2>/dev/null || echo 0)
    log "run$k: SIGKILL after ${ms} ms$( ((k == 3)) && echo " past the resume file's writing");" \
        "the seeder has sent $(seeder_uploaded) bytes so far; file.bin is $have bytes"
done

# The fourth run completes.
pt_dl final 120 "${ARGS[@]}" --stats-json "$E2E_TMP/final.json"
expect_rc final 0
assert_cmp "$E2E_TMP/seed/file.bin" "$OUT/file.bin"
stats_ok "$E2E_TMP/final.json" 's["result"] == "complete" and s["pieces_failed"] == 0' "final run complete"
grep -q 'checking' "$E2E_TMP/final.err" ||
    log "note: the final run did not recheck (its resume file was valid)"
final_down=$(stats_get "$E2E_TMP/final.json" 's["bytes_downloaded"]')
log "final run downloaded $final_down bytes in ${DL_SECS}s"
((final_down < SIZE)) ||
    fail "the final run downloaded $final_down bytes, the whole torrent: nothing was kept from the killed runs"

# The seeder's count settles within its 0.2 s refresh once ptorrent is done.
sleep 0.6
total=$(seeder_uploaded)
log "over four runs the seeder uploaded $total bytes for a $SIZE-byte torrent" \
    "($(awk -v t="$total" -v s="$SIZE" 'BEGIN { printf "%.3f", t / s }')x)"
((total >= SIZE)) || fail "the seeder counted $total bytes, less than the torrent: the measure is broken"
((total * 10 < SIZE * 12)) || fail "downloaded $total bytes over all runs, over 1.2x the torrent ($SIZE)"

# A restart after completion: nothing to download, exit 0 at once.
before=$(seeder_uploaded)
pt_dl again 30 "${ARGS[@]}" --stats-json "$E2E_TMP/again.json"
expect_rc again 0
stats_ok "$E2E_TMP/again.json" 's["result"] == "complete" and s["bytes_downloaded"] == 0' \
    "a restart after completion downloads nothing"
awk -v s="$DL_SECS" 'BEGIN { exit !(s < 10) }' || fail "a restart after completion took ${DL_SECS}s"
grep -q 'resume file accepted' "$E2E_TMP/again.err" ||
    { dl_show again; fail "the restart after completion did not trust its resume file"; }
assert_cmp "$E2E_TMP/seed/file.bin" "$OUT/file.bin"
sleep 0.6
[[ "$(seeder_uploaded)" == "$before" ]] ||
    fail "the seeder sent $(($(seeder_uploaded) - before)) bytes to a complete ptorrent"
