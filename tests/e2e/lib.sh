# shellcheck shell=bash
# Helpers for the end-to-end tests in tests/e2e/. A test sources this file:
#
#     set -euo pipefail
#     . "$(dirname "$0")/lib.sh"
#
# Sourcing installs an EXIT trap that stops every process registered with
# track_pid (TERM, then KILL after a short grace) and unmounts every directory
# registered with track_mount, so a test that fails half way, is interrupted or
# is killed by run.sh's time limit leaves nothing behind. Tests must not
# install their own EXIT trap; they can add work with on_cleanup instead.
#
# Everything here stays on loopback (127.0.0.1) and asks the kernel for free
# ports. See shared/REAL-PEERS.md for why the programs are driven this way.

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_ROOT=$(cd "$E2E_DIR/../.." && pwd)
E2E_SCRIPTS="$E2E_ROOT/scripts"
# python3-libtorrent is installed for Debian's interpreter only; the first
# python3 on PATH may be another one without it.
PY=/usr/bin/python3
# A test run outside run.sh still gets a private scratch directory.
if [[ -z "${E2E_TMP:-}" ]]; then
    E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/e2e-manual.XXXXXX")
    echo "lib.sh: E2E_TMP not set; using $E2E_TMP (kept)" >&2
fi
export E2E_TMP E2E_ROOT E2E_SCRIPTS PY

_E2E_PIDS=()
_E2E_MOUNTS=()
_E2E_CLEANUPS=()

# fail MSG...: the test's verdict. Prints to stderr (the log) and exits 1.
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# skip MSG...: the test cannot run here (exit 77, which run.sh counts apart).
skip() {
    echo "SKIP: $*" >&2
    exit 77
}

# log MSG...: a timestamped progress line, to make slow steps visible in logs.
log() {
    echo "[$(date +%H:%M:%S)] $*" >&2
}

# need_cmd CMD...: skip the test when a program it drives is missing.
need_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || skip "$c is not installed (run scripts/deps.sh)"
    done
}

# need_ptorrent: $PTORRENT must name an executable; run.sh checks it too, but
# a test started by hand should say so plainly.
need_ptorrent() {
    [[ -n "${PTORRENT:-}" && -x "$PTORRENT" ]] ||
        fail "set PTORRENT to the ptorrent binary (got '${PTORRENT:-}')"
}

# track_pid PID...: stop these processes when the test ends, however it ends.
track_pid() {
    _E2E_PIDS+=("$@")
}

# untrack_pid PID: forget a process this shell has reaped, so the cleanup
# never signals a PID that the kernel may have given to someone else since.
untrack_pid() {
    local keep=() p
    for p in "${_E2E_PIDS[@]}"; do
        [[ "$p" == "$1" ]] || keep+=("$p")
    done
    _E2E_PIDS=("${keep[@]}")
}

# track_mount DIR: unmount DIR when the test ends.
track_mount() {
    _E2E_MOUNTS+=("$1")
}

# on_cleanup CMD: run the shell command CMD at the end, before processes stop.
on_cleanup() {
    _E2E_CLEANUPS+=("$1")
}

_e2e_alive() {
    kill -0 "$1" 2>/dev/null
}

# Stops tracked processes: TERM to all, up to 3 s for them to go, then KILL.
# Processes are addressed by PID only, never by name.
_e2e_stop_pids() {
    local pid i live
    ((${#_E2E_PIDS[@]})) || return 0
    for pid in "${_E2E_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for ((i = 0; i < 30; i++)); do
        live=0
        for pid in "${_E2E_PIDS[@]}"; do
            if _e2e_alive "$pid"; then live=1; fi
        done
        ((live)) || break
        sleep 0.1
    done
    for pid in "${_E2E_PIDS[@]}"; do
        if _e2e_alive "$pid"; then
            echo "lib.sh: PID $pid ignored TERM; sending KILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    # Reap our own children so none stays a zombie; others' PIDs make wait
    # fail, which is fine.
    for pid in "${_E2E_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}

_e2e_unmount_all() {
    local m
    ((${#_E2E_MOUNTS[@]})) || return 0
    for m in "${_E2E_MOUNTS[@]}"; do
        if mountpoint -q "$m" 2>/dev/null; then
            umount "$m" 2>/dev/null || umount -l "$m" || echo "lib.sh: cannot unmount $m" >&2
        fi
    done
}

_e2e_cleanup() {
    local rc=$? c
    trap - EXIT INT TERM HUP
    set +e
    if ((${#_E2E_CLEANUPS[@]})); then
        for c in "${_E2E_CLEANUPS[@]}"; do eval "$c"; done
    fi
    _e2e_stop_pids
    _e2e_unmount_all
    exit "$rc"
}
trap _e2e_cleanup EXIT
# A signal becomes an exit with the conventional code, which runs the EXIT trap.
# (run.sh's time limit arrives as TERM: say so in the log.)
trap 'echo "lib.sh: interrupted (SIGINT)" >&2; exit 130' INT
trap 'echo "lib.sh: terminated (SIGTERM): time limit or interrupt" >&2; exit 143' TERM
trap 'exit 129' HUP

# free_port: prints a TCP port the kernel says is free on 127.0.0.1. The port
# is released before use, so another process could take it in between; binding
# port 0 makes that unlikely, unlike any fixed number.
free_port() {
    "$PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# port_listening PORT: true when something listens on TCP PORT (any address).
port_listening() {
    [[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]]
}

# wait_port PORT [SECS]: waits (default 10 s, polling every 0.1 s) until a TCP
# listener is on PORT; fails the test otherwise.
wait_port() {
    local port=$1 secs=${2:-10} i
    for ((i = 0; i < secs * 10; i++)); do
        port_listening "$port" && return 0
        sleep 0.1
    done
    fail "nothing listens on port $port after ${secs}s"
}

# wait_file FILE [SECS]: waits until FILE exists and is not empty.
wait_file() {
    local f=$1 secs=${2:-10} i
    for ((i = 0; i < secs * 10; i++)); do
        [[ -s "$f" ]] && return 0
        sleep 0.1
    done
    fail "$f did not appear after ${secs}s"
}

# wait_pid_exit PID SECS: waits for a child to exit; prints its exit code.
# Returns 1 (and prints nothing) if it is still running after SECS.
wait_pid_exit() {
    local pid=$1 secs=$2 i rc
    for ((i = 0; i < secs * 10; i++)); do
        if ! _e2e_alive "$pid"; then
            rc=0
            wait "$pid" || rc=$?
            echo "$rc"
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# run_bounded SECS CMD...: runs CMD in the foreground for at most SECS seconds
# (exit 124 on timeout). --foreground keeps CMD in this test's process group,
# so run.sh's own time limit and the cleanup still reach it.
run_bounded() {
    local secs=$1
    shift
    timeout --foreground -k 5 "$secs" "$@"
}

# run_waited SECS CMD...: runs CMD for at most SECS seconds (exit 124 on
# timeout) and returns its exit code. Unlike run_bounded, this shell waits
# with `wait`, which a signal interrupts at once (bash holds traps until a
# foreground command ends), so a long step such as a download does not delay
# the cleanup; CMD is tracked and stopped by it. CMD's stdin is /dev/null.
run_waited() {
    local secs=$1 pid rc=0
    shift
    timeout -k 5 "$secs" "$@" </dev/null &
    pid=$!
    track_pid "$pid"
    wait "$pid" || rc=$?
    untrack_pid "$pid"
    return "$rc"
}

# make_random_file PATH BYTES: PATH gets BYTES random bytes.
make_random_file() {
    mkdir -p "$(dirname "$1")"
    head -c "$2" /dev/urandom >"$1"
    [[ $(stat -c %s "$1") -eq $2 ]] || fail "make_random_file: $1 is not $2 bytes"
}

# assert_cmp A B: the two files are byte-identical.
assert_cmp() {
    cmp -- "$1" "$2" >&2 || fail "files differ: $1 $2"
}

# assert_tree_eq A B: two directory trees hold the same files with the same
# bytes (no extra or missing files either way).
assert_tree_eq() {
    diff -r --no-dereference -- "$1" "$2" >&2 || fail "trees differ: $1 $2"
}

# lt_infohash FILE.torrent: libtorrent's v1 info hash, 40 lowercase hex.
lt_infohash() {
    "$PY" -c 'import sys, libtorrent as lt
print(str(lt.torrent_info(sys.argv[1]).info_hashes().v1))' "$1"
}

# ---- opentracker ---------------------------------------------------------
# Debian's opentracker tracks only whitelisted info hashes. It chroots to its
# directory and drops to nobody, so the directory and the list must be
# readable by nobody and the list path is given relative to the directory.

OT_PID=
OT_PORT=
OT_DIR=
ANNOUNCE_URL=

# start_opentracker DIR [HASH...]: starts opentracker on 127.0.0.1 on a free
# TCP port (no UDP) with HASH... whitelisted; sets OT_PID, OT_PORT, OT_DIR and
# ANNOUNCE_URL.
start_opentracker() {
    local dir=$1 h try
    shift
    mkdir -p "$dir"
    chmod 755 "$dir"
    OT_DIR=$(cd "$dir" && pwd)
    # An empty whitelist cannot be mapped: a dummy hash keeps it non-empty.
    echo 0000000000000000000000000000000000000000 >"$OT_DIR/whitelist"
    for h in "$@"; do echo "$h" >>"$OT_DIR/whitelist"; done
    chmod 644 "$OT_DIR/whitelist"
    # The free port may be taken between free_port and bind: try a few.
    for try in 1 2 3; do
        OT_PORT=$(free_port)
        opentracker -i 127.0.0.1 -p "$OT_PORT" -d "$OT_DIR" -u nobody -w whitelist \
            >"$OT_DIR/../opentracker.$OT_PORT.log" 2>&1 &
        OT_PID=$!
        track_pid "$OT_PID"
        local i
        for ((i = 0; i < 50; i++)); do
            port_listening "$OT_PORT" && break
            _e2e_alive "$OT_PID" || break
            sleep 0.1
        done
        if port_listening "$OT_PORT" && _e2e_alive "$OT_PID"; then
            ANNOUNCE_URL="http://127.0.0.1:$OT_PORT/announce"
            export OT_PORT ANNOUNCE_URL
            for h in "$@"; do ot_wait_hash "$h"; done
            log "opentracker pid $OT_PID on $ANNOUNCE_URL"
            return 0
        fi
        echo "lib.sh: opentracker try $try failed on port $OT_PORT" >&2
        kill "$OT_PID" 2>/dev/null || true
    done
    fail "opentracker did not start"
}

# ot_announce HASH EVENT: one announce for a probe peer; prints the raw reply.
_ot_announce() {
    "$PY" - "$ANNOUNCE_URL" "$1" "$2" <<'EOF'
import sys, urllib.parse, urllib.request
url, ih, event = sys.argv[1], bytes.fromhex(sys.argv[2]), sys.argv[3]
q = {"peer_id": b"-E2EPRB-probeprobe00", "port": "9", "uploaded": "0",
     "downloaded": "0", "left": "0", "compact": "1", "numwant": "0", "event": event}
qs = "info_hash=" + urllib.parse.quote_from_bytes(ih) + "&" + urllib.parse.urlencode(q)
sys.stdout.write(urllib.request.urlopen(url + "?" + qs, timeout=3).read().decode("latin-1"))
EOF
}

# ot_wait_hash HASH: waits until opentracker accepts announces for HASH. The
# probe peer announces "started" and at once "stopped", so it never stays in
# the peer list. ("stopped" alone is answered even for unlisted hashes.)
ot_wait_hash() {
    local h=$1 i reply
    for ((i = 0; i < 50; i++)); do
        reply=$(_ot_announce "$h" started 2>/dev/null) || reply=
        if [[ -n "$reply" && "$reply" != *"failure reason"* ]]; then
            _ot_announce "$h" stopped >/dev/null 2>&1 || true
            return 0
        fi
        sleep 0.1
    done
    fail "opentracker does not accept $h (last reply: ${reply:-none})"
}

# opentracker_add_hash HASH: whitelists HASH in the running opentracker.
opentracker_add_hash() {
    [[ -n "$OT_PID" ]] || fail "opentracker_add_hash: no opentracker running"
    echo "$1" >>"$OT_DIR/whitelist"
    kill -HUP "$OT_PID"
    ot_wait_hash "$1"
}

# ---- libtorrent swarm ----------------------------------------------------

# start_lt_seeders TORRENT DATA_DIR COUNT [EXTRA ARGS...]: starts COUNT
# libtorrent seeders in one process (scripts/lt_swarm.py) and waits until all
# have checked their data and announced; sets LT_SEED_PID and LT_SEED_PORTS
# (an array of their listen ports).
LT_SEED_PID=
LT_SEED_PORTS=()
start_lt_seeders() {
    local torrent=$1 data=$2 count=$3 ports_file rc
    shift 3
    ports_file=$(mktemp "$E2E_TMP/lt_ports.XXXXXX")
    rm -f "$ports_file"
    "$PY" "$E2E_SCRIPTS/lt_swarm.py" seed --torrent "$torrent" --data "$data" \
        --count "$count" --ports-file "$ports_file" "$@" \
        >>"$E2E_TMP/lt_swarm_seed.log" 2>&1 &
    LT_SEED_PID=$!
    track_pid "$LT_SEED_PID"
    local i
    for ((i = 0; i < 1200; i++)); do
        [[ -s "$ports_file" ]] && break
        if ! _e2e_alive "$LT_SEED_PID"; then
            rc=0
            wait "$LT_SEED_PID" || rc=$?
            tail -n 20 "$E2E_TMP/lt_swarm_seed.log" >&2
            fail "lt_swarm.py seed exited ($rc) before seeding"
        fi
        sleep 0.1
    done
    [[ -s "$ports_file" ]] || fail "lt_swarm.py seed not ready after 120s"
    mapfile -t LT_SEED_PORTS <"$ports_file"
    log "libtorrent seeders pid $LT_SEED_PID on ports ${LT_SEED_PORTS[*]}"
}
