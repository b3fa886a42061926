#!/usr/bin/env bash
# `ptorrent download` gives up cleanly when the tracker is no use: nothing
# listening at the announce URL, a tracker that refuses the torrent
# ("failure reason"), and one that answers HTML instead of bencode. Each run
# exits 3 within a bounded time, prints one "ptorrent:" error line that says
# what went wrong, and writes stats-json with a result other than "complete".
# timeout: 150
set -euo pipefail
. "$(dirname "$0")/lib_dl.sh"
need_ptorrent

make_random_file "$E2E_TMP/seed/file.bin" 100000
LIMIT=30 # seconds any of these may take; a retry policy of a few tries fits

# check_run NAME REGEX: exit 3, in time, one error line matching REGEX.
check_run() {
    expect_rc "$1" 3
    awk -v t="$DL_SECS" -v l="$LIMIT" 'BEGIN { exit !(t < l) }' ||
        fail "$1: took ${DL_SECS}s, limit ${LIMIT}s"
    expect_one_error "$1" "$2"
    stats_ok "$E2E_TMP/$1.json" 's["result"] != "complete"' "$1: result is not complete"
}

# (a) A port where nothing listens: connection refused on every try.
dead=$(free_port)
mk_torrent "$E2E_TMP/dead.torrent" 16384 "$E2E_TMP/seed/file.bin" "http://127.0.0.1:$dead/announce"
dl dead $((LIMIT + 10)) -t "$E2E_TMP/dead.torrent" -o "$E2E_TMP/out-dead" \
    --stats-json "$E2E_TMP/dead.json"
check_run dead "tracker.*127\.0\.0\.1:$dead"

# (b) A tracker that refuses: its failure reason reaches the user.
start_fixed_httpd 'd14:failure reason11:not allowede'
mk_torrent "$E2E_TMP/refused.torrent" 16384 "$E2E_TMP/seed/file.bin" "$HTTPD_URL"
dl refused $((LIMIT + 10)) -t "$E2E_TMP/refused.torrent" -o "$E2E_TMP/out-refused" \
    --stats-json "$E2E_TMP/refused.json"
check_run refused "tracker.*not allowed"
grep -q 'GET /announce?' "$E2E_TMP/httpd.log" || fail "ptorrent never asked the fake tracker"
kill -TERM "$HTTPD_PID"
wait_pid_exit "$HTTPD_PID" 5 >/dev/null || true
untrack_pid "$HTTPD_PID"

# (c) A web page instead of bencode.
start_fixed_httpd '<html>oops</html>'
mk_torrent "$E2E_TMP/garbage.torrent" 16384 "$E2E_TMP/seed/file.bin" "$HTTPD_URL"
dl garbage $((LIMIT + 10)) -t "$E2E_TMP/garbage.torrent" -o "$E2E_TMP/out-garbage" \
    --stats-json "$E2E_TMP/garbage.json"
check_run garbage "tracker.*(invalid|malformed|not valid|bad) .*response|tracker.*response.*(invalid|not valid|bencode)"
