#!/usr/bin/env bash
# `ptorrent download` stops promptly and says so when interrupted: a download
# from a libtorrent seeder limited to 512 KiB/s (a 16 MiB torrent would take
# ~30 s) gets SIGINT once a piece is on disk and must exit 130 within a few
# seconds; again with SIGTERM, exit 143. No ptorrent process is left behind either time.
# timeout: 90
set -euo pipefail
. "$(dirname "$0")/lib_dl.sh"
need_ptorrent
need_cmd opentracker

tracked_file $((16 * 1024 * 1024))
start_lt_seeders "$E2E_TMP/file.torrent" "$E2E_TMP/seed" 1 --upload-rate 512
ot_wait_seeders "$IH" 1

# interrupt NAME SIGNAL WANT: start a download, send SIGNAL once a piece is
# on disk (or after 21 s), and expect exit WANT within 5 s.
interrupt() {
    local name=$1 sig=$2 want=$3 pid rc i t0
    # Like dl, with the signals' default actions restored: a background job
    # of a script starts with SIGINT ignored.
    env --default-signal=INT,TERM "$PTORRENT" download -t "$E2E_TMP/file.torrent" \
        -o "$E2E_TMP/out-$name" -v --port "$(free_port)" --stats-json "$E2E_TMP/$name.json" \
        </dev/null >"$E2E_TMP/$name.out" 2>"$E2E_TMP/$name.err" &
    pid=$!
    track_pid "$pid"
    # Signal once a first piece is on disk (the file is sparse until then),
    # not after a fixed time: a loaded machine (sanitizers, CI running suites
    # side by side) may take longer than 2 s to verify one piece.
    sleep 1
    for ((i = 0; i < 200; i++)); do
        (($(stat -c '%b * %B' "$E2E_TMP/out-$name/file.bin" 2>/dev/null || echo 0) >= 262144)) && break
        _e2e_alive "$pid" || break
        sleep 0.1
    done
    _e2e_alive "$pid" || { dl_show "$name"; fail "$name: ptorrent ended before the signal"; }
    grep -q 'connected' "$E2E_TMP/$name.err" || { dl_show "$name"; fail "$name: no peer connected before the signal"; }
    t0=$(now)
    kill "-$sig" "$pid"
    # Not rc=$(wait_pid_exit ...): a command substitution is a subshell,
    # which cannot wait for this shell's child.
    wait_pid_exit "$pid" 5 >"$E2E_TMP/$name.rc" ||
        { dl_show "$name"; fail "$name: still running 5 s after SIG$sig"; }
    rc=$(<"$E2E_TMP/$name.rc")
    untrack_pid "$pid"
    log "$name: SIG$sig -> exit $rc after $(elapsed "$t0")s"
    tsan_check "$name"
    [[ "$rc" == "$want" ]] || { dl_show "$name"; fail "$name: SIG$sig gave exit $rc, expected $want"; }
    # The process and its threads are gone (nothing else has this PID now).
    ! kill -0 "$pid" 2>/dev/null || fail "$name: ptorrent $pid still exists"
    stats_ok "$E2E_TMP/$name.json" 's["result"] != "complete"' "$name: result is not complete"
    stats_ok "$E2E_TMP/$name.json" 's["bytes_downloaded"] > 0' "$name: the download had started"
}

interrupt sigint INT 130
interrupt sigterm TERM 143
# No ptorrent of ours survives, by PID in this test's process group.
# (comm is the binary's name cut to 15 characters.)
comm=$(basename "$PTORRENT" | cut -c1-15)
left=$(pgrep -g "$(ps -o pgid= $$ | tr -d ' ')" -x "$comm" || true)
[[ -z "$left" ]] || fail "ptorrent processes left: $left"
