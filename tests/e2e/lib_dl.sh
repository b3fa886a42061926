# shellcheck shell=bash
# Helpers shared by the `ptorrent download` end-to-end tests
# (tests/e2e/t_download_*.sh). A test sources this file instead of lib.sh:
#
#     set -euo pipefail
#     . "$(dirname "$0")/lib_dl.sh"
#
# It sources lib.sh (traps, track_pid, opentracker, libtorrent seeders) and
# adds: making torrents, running ptorrent with its output captured, reading
# --stats-json, a hostile fake peer and an aria2c seeder.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# mk_torrent OUT PIECE_BYTES PATH [URL]: a v1 torrent made by libtorrent
# (scripts/mktorrent_lt.py: any power-of-two piece size, empty files kept).
mk_torrent() {
    local out=$1 piece=$2 path=$3 url=${4:-}
    local args=(--piece-size "$piece" -o "$out")
    [[ -z "$url" ]] || args+=(-a "$url")
    "$PY" "$E2E_SCRIPTS/mktorrent_lt.py" "${args[@]}" "$path" || fail "mktorrent_lt.py failed for $path"
}

# tracked_file SIZE: the one-file case most download tests share: SIZE
# random bytes in $E2E_TMP/seed/file.bin, opentracker started, and
# $E2E_TMP/file.torrent (256 KiB pieces) announcing to it, whitelisted.
# Sets IH, the torrent's info hash.
IH=
tracked_file() {
    make_random_file "$E2E_TMP/seed/file.bin" "$1"
    start_opentracker "$E2E_TMP/ot"
    mk_torrent "$E2E_TMP/file.torrent" 262144 "$E2E_TMP/seed/file.bin" "$ANNOUNCE_URL"
    IH=$(lt_infohash "$E2E_TMP/file.torrent")
    opentracker_add_hash "$IH"
}

# now: seconds since the epoch with a fraction, for timing a step.
now() {
    date +%s.%N
}

# elapsed START: seconds since START (from now), one decimal.
elapsed() {
    awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'
}

# dl NAME SECS ARGS...: runs `ptorrent download ARGS...` for at most SECS
# seconds with stdout in $E2E_TMP/NAME.out and stderr in $E2E_TMP/NAME.err.
# Sets DL_RC (124 on timeout) and DL_SECS. ptorrent is told a --port where
# nothing listens: the tracker hands our own address back to us, and the
# default 6881 may be some other client's port (aria2c's default is 6881).
# SIGINT and SIGTERM get their default action back: a shell's background job
# starts with SIGINT ignored, and a user's Ctrl-C never finds it so.
DL_RC=
DL_SECS=
dl() {
    local name=$1 secs=$2 t0
    shift 2
    t0=$(now)
    DL_RC=0
    run_waited "$secs" env --default-signal=INT,TERM \
        "$PTORRENT" download --port "$(free_port)" "$@" \
        >"$E2E_TMP/$name.out" 2>"$E2E_TMP/$name.err" || DL_RC=$?
    DL_SECS=$(elapsed "$t0")
    log "ptorrent download ($name): exit $DL_RC in ${DL_SECS}s"
    tsan_check "$name"
}

# tsan_check NAME: a sanitizer report in NAME.err fails the test, and shows
# the report (TSan makes ptorrent exit 66, which no test expects anyway).
tsan_check() {
    local err="$E2E_TMP/$1.err"
    if grep -q -e '^WARNING: ThreadSanitizer' -e '^==[0-9]*==ERROR: .*Sanitizer' "$err" 2>/dev/null; then
        sed -n '/Sanitizer/,$p' "$err" | head -n 80 >&2
        fail "$1: sanitizer report in $err"
    fi
}

# dl_show NAME: the end of a run's output, for a failure's log.
dl_show() {
    echo "---- $1.err (last 30 lines) ----" >&2
    tail -n 30 "$E2E_TMP/$1.err" >&2 || true
    echo "---- $1.out (last 10 lines) ----" >&2
    tail -n 10 "$E2E_TMP/$1.out" >&2 || true
}

# expect_rc NAME WANT: the run NAME exited with exactly WANT.
expect_rc() {
    if [[ "$DL_RC" != "$2" ]]; then
        dl_show "$1"
        fail "$1: ptorrent exited $DL_RC, expected $2"
    fi
}

# stats_ok FILE PY_EXPR WHAT: PY_EXPR, a Python expression over `s` (the
# parsed --stats-json), is true; otherwise fail with WHAT and the JSON.
stats_ok() {
    local file=$1 expr=$2 what=$3
    [[ -s "$file" ]] || fail "no stats JSON in $file ($what)"
    "$PY" -c 'import json, sys
s = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)' "$file" "$expr" ||
        { cat "$file" >&2; echo >&2; fail "stats: $what (false: $expr)"; }
}

# stats_get FILE PY_EXPR: prints the value of PY_EXPR over `s`.
stats_get() {
    "$PY" -c 'import json, sys
s = json.load(open(sys.argv[1]))
print(eval(sys.argv[2]))' "$1" "$2"
}

# ---- hostile peer (tests/fake_peer.py) -----------------------------------

FAKE_PID=
FAKE_PORT=
FAKE_LOG=

# start_fake_peer MODE TORRENT DATA [--tracker URL]: starts the fake peer on
# a free port; waits for its listen socket and, with a tracker, until it has
# announced. Sets FAKE_PID, FAKE_PORT and FAKE_LOG.
start_fake_peer() {
    local mode=$1 torrent=$2 data=$3 i
    shift 3
    FAKE_PORT=$(free_port)
    FAKE_LOG="$E2E_TMP/fake_peer.$mode.log"
    "$PY" "$E2E_ROOT/tests/fake_peer.py" --mode "$mode" --torrent "$torrent" --data "$data" \
        --port "$FAKE_PORT" --log "$FAKE_LOG" "$@" >>"$E2E_TMP/fake_peer.stderr" 2>&1 &
    FAKE_PID=$!
    track_pid "$FAKE_PID"
    wait_port "$FAKE_PORT" 10
    if [[ " $* " == *" --tracker "* ]]; then
        for ((i = 0; i < 100; i++)); do
            grep -q -e ' announce-ok ' -e ' announce-failed ' "$FAKE_LOG" 2>/dev/null && break
            sleep 0.1
        done
        grep -q ' announce-ok ' "$FAKE_LOG" || { cat "$FAKE_LOG" >&2; fail "fake peer did not announce"; }
    fi
    log "fake peer ($mode) pid $FAKE_PID on port $FAKE_PORT"
}

# ---- aria2c seeder ----------------------------------------------------------

ARIA_PID=
ARIA_PORT=

# start_aria2_seeder TORRENT DATA_DIR: aria2c checks DATA_DIR against TORRENT
# (-V) and seeds it for ever (--seed-ratio=0.0) on a free port, with the quiet
# loopback flags of shared/REAL-PEERS.md. Its log is block-buffered, so
# readiness is its listen socket, not a log line. Sets ARIA_PID, ARIA_PORT.
start_aria2_seeder() {
    local torrent=$1 data=$2 try
    for try in 1 2 3; do
        ARIA_PORT=$(free_port)
        aria2c --enable-dht=false --enable-dht6=false --bt-enable-lpd=false \
            --enable-peer-exchange=false --interface=127.0.0.1 --disable-ipv6=true \
            --listen-port="$ARIA_PORT" -V --seed-ratio=0.0 --dir="$data" \
            --console-log-level=warn --summary-interval=0 --check-integrity=true \
            --bt-stop-timeout=0 --file-allocation=none \
            "$torrent" >>"$E2E_TMP/aria2c.log" 2>&1 &
        ARIA_PID=$!
        track_pid "$ARIA_PID"
        local i
        for ((i = 0; i < 100; i++)); do
            port_listening "$ARIA_PORT" && break
            _e2e_alive "$ARIA_PID" || break
            sleep 0.1
        done
        if port_listening "$ARIA_PORT" && _e2e_alive "$ARIA_PID"; then
            log "aria2c seeder pid $ARIA_PID on port $ARIA_PORT"
            return 0
        fi
        echo "lib_dl.sh: aria2c try $try failed on port $ARIA_PORT" >&2
        kill "$ARIA_PID" 2>/dev/null || true
    done
    tail -n 20 "$E2E_TMP/aria2c.log" >&2
    fail "aria2c did not start seeding"
}

# ot_wait_seeders HASH N: waits (up to 20 s) until the opentracker of
# start_opentracker counts at least N seeders for HASH (its scrape), so that
# ptorrent's first announce already lists every seeder a test started.
ot_wait_seeders() {
    local h=$1 n=$2 i got=0
    for ((i = 0; i < 200; i++)); do
        got=$("$PY" - "$OT_PORT" "$h" <<'PYEOF' 2>/dev/null || echo 0
import re, sys, urllib.parse, urllib.request
url = "http://127.0.0.1:%s/scrape?info_hash=%s" % (
    sys.argv[1], urllib.parse.quote_from_bytes(bytes.fromhex(sys.argv[2])))
body = urllib.request.urlopen(url, timeout=3).read()
m = re.search(rb"8:completei(\d+)e", body)
print(m.group(1).decode() if m else 0)
PYEOF
)
        ((got >= n)) && return 0
        sleep 0.1
    done
    fail "opentracker lists $got seeders for $h, expected $n"
}

# ---- a hostile peer beside an honest seeder ---------------------------------

# hostile_download MODE SEED_KIB [PTORRENT_ARGS...]: an 8 MiB torrent (32
# pieces of 256 KiB) on opentracker, one libtorrent seeder limited to SEED_KIB
# KiB/s (0: unlimited) and the fake peer in MODE, both announced. ptorrent is
# also given the fake with --peer, so it dials the fake at once rather than
# when the tracker's list happens to reach it; the slow seeder leaves pieces
# for the fake to be asked for. Runs the download as `hostile` (files
# hostile.out, hostile.err, hostile.json) and checks that it completes
# byte-identical. Sets HOSTILE_ADDR (the fake's address as ptorrent shows it).
HOSTILE_ADDR=
hostile_download() {
    local mode=$1 kib=$2
    shift 2
    tracked_file $((8 * 1024 * 1024))
    start_lt_seeders "$E2E_TMP/file.torrent" "$E2E_TMP/seed" 1 --upload-rate "$kib"
    start_fake_peer "$mode" "$E2E_TMP/file.torrent" "$E2E_TMP/seed" --tracker "$ANNOUNCE_URL"
    HOSTILE_ADDR="127.0.0.1:$FAKE_PORT"
    ot_wait_seeders "$IH" 2

    dl hostile 90 -t "$E2E_TMP/file.torrent" -o "$E2E_TMP/out" -v \
        --peer "$HOSTILE_ADDR" --stats-json "$E2E_TMP/hostile.json" "$@"
    expect_rc hostile 0
    assert_cmp "$E2E_TMP/seed/file.bin" "$E2E_TMP/out/file.bin"
    stats_ok "$E2E_TMP/hostile.json" 's["result"] == "complete"' "result"
    log "fake peer did: $(awk '{print $2}' "$FAKE_LOG" | sort | uniq -c | tr -s ' \n' ' ')"
    log "ptorrent about the fake: $(grep -F "[peer $HOSTILE_ADDR]" "$E2E_TMP/hostile.err" | head -n 5 | tr '\n' '|')"
}

# peer_log_has ADDR REGEX: ptorrent's -v log of the `hostile` run has a line
# about peer ADDR that matches the extended REGEX.
peer_log_has() {
    # Not `grep -q` at the end of the pipe: it exits at the first match, the
    # first grep may die of SIGPIPE, and pipefail makes that a failure.
    grep -F "[peer $1]" "$E2E_TMP/hostile.err" | grep -E -- "$2" >/dev/null
}

# ---- a fake HTTP tracker ------------------------------------------------------

HTTPD_PID=
HTTPD_PORT=
HTTPD_URL=

# start_fixed_httpd BODY: an HTTP server on a free port that answers every GET
# with 200 and BODY (bytes as given, no newline added) and logs each request
# to $E2E_TMP/httpd.log. Sets HTTPD_PID, HTTPD_PORT and HTTPD_URL (an
# announce URL on it).
start_fixed_httpd() {
    HTTPD_PORT=$(free_port)
    "$PY" - "$HTTPD_PORT" "$1" >>"$E2E_TMP/httpd.log" 2>&1 <<'PYEOF' &
import http.server, os, sys
port, body = int(sys.argv[1]), os.fsencode(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *args):
        sys.stderr.write("httpd: " + (fmt % args) + "\n")
        sys.stderr.flush()
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PYEOF
    HTTPD_PID=$!
    track_pid "$HTTPD_PID"
    wait_port "$HTTPD_PORT" 10
    # shellcheck disable=SC2034 # for the tests that source this file
    HTTPD_URL="http://127.0.0.1:$HTTPD_PORT/announce"
}

# error_lines NAME: the lines of run NAME's stderr that are ptorrent's final
# verdict (they start with "ptorrent:").
error_lines() {
    grep '^ptorrent:' "$E2E_TMP/$1.err" || true
}

# expect_one_error NAME REGEX: run NAME printed exactly one "ptorrent:" line,
# and it matches the case-insensitive extended REGEX.
expect_one_error() {
    local lines n
    lines=$(error_lines "$1")
    n=$(grep -c . <<<"$lines" || true)
    if [[ "$n" != 1 ]] || ! grep -Eqi -- "$2" <<<"$lines"; then
        dl_show "$1"
        fail "$1: expected one 'ptorrent:' error line matching /$2/, got $n: $lines"
    fi
    log "$1 said: $lines"
}
