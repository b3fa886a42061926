#!/usr/bin/env bash
# ptorrent's benchmark: the same torrent downloaded by ptorrent and by other
# clients from the same libtorrent seeders, on loopback. See usage() below.
#
# Why it is built this way:
# - Everything lives on tmpfs when there is room, so the disk is not what is
#   measured (the report says where the data was).
# - Each download runs under `/usr/bin/time -v`, whose figures (wall clock,
#   user + system CPU, peak RSS) mean the same thing for every client. The
#   file is then compared with `cmp`; a run that differs or fails is counted
#   as failed and makes the script exit 1.
# - Runs are interleaved (run 1 of every client, then run 2, ...) so a slow
#   spell of the machine hurts every client alike, and the median is shown.
#   The order turns by one client each run (A B C D, then B C D A, ...; the
#   seeding table swaps its two seeders), so no client is always the one
#   that follows the making of the content or a given other client: on the
#   VMs we measure on, a write to memory the previous process freed costs
#   differently from one to memory freed minutes ago. For the same reason
#   each configuration begins with a download that is not counted (warm_up).
# - Before every download opentracker is restarted on the same port: it keeps
#   peers in memory only, so its table is then empty, while the announce URL
#   in the torrent stays valid. Our seeders (scripts/bench_swarm.py)
#   re-announce on SIGUSR1, and the client starts only once a scrape counts
#   exactly them, complete, and nobody else. So every client's first announce
#   returns the same seeders, never a finished client of an earlier run.
# - transmission-cli drops loopback peers handed out by a tracker, so the
#   seeders dial it (SIGUSR2) as soon as it listens. It also keys peers by IP
#   only: on loopback it uses one seeder whatever --seeders says.
# - Every process is started here and stopped by PID, also on Ctrl-C: the
#   cleanup trap of tests/e2e/lib.sh does that.
set -euo pipefail
export LC_ALL=C # decimal points, not commas, in $EPOCHREALTIME and printf

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PY=/usr/bin/python3 # python3-libtorrent is installed for this one only
ALL_CLIENTS=ptorrent,aria2c,transmission,libtorrent
SEEDING_LEECHERS=(libtorrent aria2c)

# Options (see usage).
SIZES=1G
PIECES=1M
SEEDER_COUNTS=4
CONFIGS=      # --config: SIZE:PIECE:SEEDERS triples instead of the cross product
SEEDING_AT=   # --full: the one SIZE:PIECE pair that gets the seeding table
MAX_SEEDERS=256
CLIENTS=$ALL_CLIENTS
RUNS=3
SEEDING=0
BUILD=1
KEEP=0
REPORT_FILE=
USER_TIMEOUT= # --timeout
DL_TIMEOUT=   # seconds per download: USER_TIMEOUT, or from the size

usage() {
    cat <<EOF
usage: scripts/bench.sh [OPTIONS]

Builds ptorrent (make), then on 127.0.0.1 starts opentracker and libtorrent
seeders, and downloads the same torrent with each client, each run under
/usr/bin/time -v and checked with cmp. Prints Markdown tables (medians) on
stdout, progress on stderr. Exits 1 if any download failed or differed.

  --size LIST      content sizes, comma-separated (K, M, G = KiB, MiB, GiB)
                   (default $SIZES)
  --piece LIST     piece sizes, powers of two >= 16K (default $PIECES)
  --seeders LIST   numbers of libtorrent seeders, 1 to $MAX_SEEDERS
                   (default $SEEDER_COUNTS)
  --config LIST    SIZE:PIECE:SEEDERS triples, comma-separated, instead of
                   every combination of --size, --piece and --seeders
  --clients LIST   among $ALL_CLIENTS (default: all)
  --runs N         runs per client and configuration; the median is shown
                   (default $RUNS)
  --seeding        also the "seeding" table: a libtorrent and an aria2c
                   leecher each download from a lone \`ptorrent seed\`, then
                   from a lone libtorrent seeder
  --seeding-at SIZE:PIECE
                   the seeding table for that pair only
  --quick          smoke test: 64M, 1M pieces, 1 seeder, 1 run, with a
                   small seeding table; well under a minute. Options after
                   it override its values.
  --full           the rows issue 6 asks for, 3 runs each: 1G with 1M
                   pieces from 1, 4 and 100 seeders, 1G with 256K pieces,
                   4G and 256M with 4M pieces from 4 seeders; the seeding
                   table for 1G, 1M pieces. About an hour.
  --timeout S      limit per download in seconds (default 30 + 1 s per 5 MiB)
  --report FILE    also write the Markdown report to FILE
  --no-build       do not run make (use \$PTORRENT or build/ptorrent as is)
  --keep           keep the work directory (logs, time -v output, results)
  -h, --help       this help

A configuration is one (size, piece, seeders) triple; each gets a table:
client, runs that succeeded, median wall seconds (process start to exit),
MiB/s (size / wall), done seconds (start to complete data, from each
client's completion hook: aria2c and the python client linger at exit),
CPU seconds (user + system), peak RSS MiB, and wall time / ptorrent's.
Each configuration starts with one download by the first client that no
table counts (a warm-up), and the order of the clients turns each run.
A "floor" table gives what one core and one TCP stream do at best, and
what writing the bytes once into a new file costs.

Example: scripts/bench.sh --size 256M,1G --piece 1M --seeders 1,4 --runs 3 --seeding
EOF
}

# die MSG: a usage error, before lib.sh (and its fail) is loaded.
die() {
    echo "bench.sh: $*" >&2
    exit 2
}

# to_bytes TEXT: 64M -> 67108864; K, M, G are binary; plain digits are bytes.
to_bytes() {
    local t=${1^^} mult=1
    case "$t" in
    *K | *KIB) mult=1024 ;;
    *M | *MIB) mult=$((1 << 20)) ;;
    *G | *GIB) mult=$((1 << 30)) ;;
    esac
    t=${t%IB}
    t=${t%[KMG]}
    [[ "$t" =~ ^[0-9]+$ ]] || die "not a size: $1"
    echo $((t * mult))
}

# The value of option $1, or die when it is missing.
need_arg() {
    [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"
}

parse_args() {
    local a
    while (($#)); do
        a=$1
        case "$a" in
        --size) need_arg "$@"; SIZES=$2; shift ;;
        --piece) need_arg "$@"; PIECES=$2; shift ;;
        --seeders) need_arg "$@"; SEEDER_COUNTS=$2; shift ;;
        --clients) need_arg "$@"; CLIENTS=$2; shift ;;
        --runs) need_arg "$@"; RUNS=$2; shift ;;
        --timeout) need_arg "$@"; USER_TIMEOUT=$2; shift ;;
        --report) need_arg "$@"; REPORT_FILE=$(realpath -m "$2"); shift ;;
        --config) need_arg "$@"; CONFIGS=$2; shift ;;
        --seeding-at) need_arg "$@"; SEEDING=1 SEEDING_AT=$2; shift ;;
        --seeding) SEEDING=1 ;;
        --full)
            CONFIGS=1G:1M:1,1G:1M:4,1G:1M:100,1G:256K:4,4G:4M:4,256M:4M:4
            RUNS=3 SEEDING=1 SEEDING_AT=1G:1M
            ;;
        --quick)
            SIZES=64M PIECES=1M SEEDER_COUNTS=1 RUNS=1 SEEDING=1
            ;;
        --no-build) BUILD=0 ;;
        --keep) KEEP=1 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option: $a (see --help)" ;;
        esac
        shift
    done
    check_args
}

# check_args: turns the comma lists into arrays of numbers and names.
check_args() {
    local x b
    SIZE_LIST=() PIECE_LIST=() SEEDERS_LIST=() CLIENT_LIST=()
    # (set -e ends the script when a check in a $(...) dies)
    for x in ${SIZES//,/ }; do
        b=$(check_size "$x")
        SIZE_LIST+=("$b")
    done
    for x in ${PIECES//,/ }; do
        b=$(check_piece "$x")
        PIECE_LIST+=("$b")
    done
    for x in ${SEEDER_COUNTS//,/ }; do
        check_seeders "$x"
        SEEDERS_LIST+=("$x")
    done
    for x in ${CLIENTS//,/ }; do
        [[ ",$ALL_CLIENTS," == *",$x,"* ]] || die "--clients: unknown client $x"
        CLIENT_LIST+=("$x")
    done
    ((${#SIZE_LIST[@]} && ${#PIECE_LIST[@]} && ${#SEEDERS_LIST[@]} && ${#CLIENT_LIST[@]})) ||
        die "empty --size, --piece, --seeders or --clients"
    make_config_list
    if ! [[ "$RUNS" =~ ^[0-9]+$ ]] || ((RUNS < 1)); then die "--runs: a number >= 1"; fi
    [[ -z "$USER_TIMEOUT" || "$USER_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "--timeout: whole seconds"
}

check_size() {
    local b
    b=$(to_bytes "$1")
    ((b >= 1 << 20)) || die "size $1: at least 1M"
    echo "$b"
}

check_piece() {
    local b
    b=$(to_bytes "$1")
    ((b >= 16384 && (b & (b - 1)) == 0)) || die "piece $1: a power of two >= 16K"
    echo "$b"
}

check_seeders() {
    if ! [[ "$1" =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > MAX_SEEDERS)); then
        die "seeders $1: 1 to $MAX_SEEDERS"
    fi
}

# make_config_list: CONFIG_LIST, one "SIZE PIECE SEEDERS" (bytes, bytes,
# count) per configuration, from --config or else from the cross product.
# SEEDING_PAIR is "SIZE PIECE" of --full's seeding table ("" = every pair).
make_config_list() {
    local x s p n size piece
    CONFIG_LIST=() SEEDING_PAIR=
    if [[ -z "$CONFIGS" ]]; then
        for size in "${SIZE_LIST[@]}"; do
            for piece in "${PIECE_LIST[@]}"; do
                for n in "${SEEDERS_LIST[@]}"; do CONFIG_LIST+=("$size $piece $n"); done
            done
        done
    else
        for x in ${CONFIGS//,/ }; do
            IFS=: read -r s p n <<<"$x"
            [[ -n "$s" && -n "$p" && -n "$n" ]] || die "--config $x: SIZE:PIECE:SEEDERS"
            check_seeders "$n"
            s=$(check_size "$s")
            p=$(check_piece "$p")
            CONFIG_LIST+=("$s $p $n")
        done
    fi
    if [[ -n "$SEEDING_AT" ]]; then
        IFS=: read -r s p <<<"$SEEDING_AT"
        s=$(check_size "$s")
        p=$(check_piece "$p")
        SEEDING_PAIR="$s $p"
    fi
}

# The source the measured binary was built from: taken when it is built, as
# the tree may change while a long run goes on.
PT_SOURCE='?'

build() {
    PT_SOURCE=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')
    ((BUILD)) || { PT_SOURCE="$PT_SOURCE (--no-build: the binary may be older)"; return 0; }
    echo "bench.sh: make" >&2
    make -C "$ROOT" all >&2
}

# make_workdir: the scratch directory, on /dev/shm when it has room for the
# content and one download of the largest size (plus slack), so the clients
# write to memory, not to a disk. Sets WORK and DATA_WHERE.
make_workdir() {
    local max=0 s need avail
    for s in "${SIZE_LIST[@]}"; do ((s > max)) && max=$s; done
    need=$((2 * max + (256 << 20)))
    avail=$(df --output=avail -B1 /dev/shm 2>/dev/null | tail -n 1 | tr -d ' ') || avail=0
    if [[ "$avail" =~ ^[0-9]+$ ]] && ((avail >= need)); then
        WORK=$(mktemp -d /dev/shm/ptorrent-bench.XXXXXX)
    else
        WORK=$(mktemp -d "${TMPDIR:-/tmp}/ptorrent-bench.XXXXXX")
    fi
    if [[ "$(stat -f -c %T "$WORK")" == tmpfs ]]; then
        DATA_WHERE="tmpfs ($WORK)"
    else
        DATA_WHERE="$WORK, NOT tmpfs (/dev/shm lacks $((need >> 20)) MiB free): the disk is part of the figures"
    fi
}

# ---- tracker and seeders --------------------------------------------------

# tracker_restart: stops opentracker and starts it again on the same port
# with the same whitelist: an empty peer table and the same announce URL.
# opentracker binds with SO_REUSEPORT, so the old one must be gone first or
# the two would share the port and answer in turn.
tracker_restart() {
    local try i
    kill -TERM "$OT_PID" 2>/dev/null || true
    wait "$OT_PID" 2>/dev/null || true
    untrack_pid "$OT_PID"
    for try in 1 2 3; do
        opentracker -i 127.0.0.1 -p "$OT_PORT" -d "$OT_DIR" -u nobody -w whitelist \
            >>"$WORK/opentracker.log" 2>&1 &
        OT_PID=$!
        track_pid "$OT_PID"
        for ((i = 0; i < 50; i++)); do
            port_listening "$OT_PORT" && _e2e_alive "$OT_PID" && return 0
            _e2e_alive "$OT_PID" || break
            sleep 0.05
        done
        wait "$OT_PID" 2>/dev/null || true
        untrack_pid "$OT_PID"
        log "opentracker restart try $try failed on port $OT_PORT"
        sleep 0.5
    done
    fail "opentracker does not restart on port $OT_PORT (see $WORK/opentracker.log)"
}

# tracker_wait SEEDERS SECS [ARGS...]: waits until a scrape of $IH counts
# exactly SEEDERS complete peers and no incomplete one.
tracker_wait() {
    local n=$1 secs=$2
    shift 2
    "$PY" "$HERE/bench_swarm.py" tracker-wait --announce "$ANNOUNCE_URL" --info-hash "$IH" \
        --seeders "$n" --timeout "$secs" "$@"
}

# tracker_reset N SEEDER_PID: an empty table, then exactly the N seeders of
# the process SEEDER_PID (a bench_swarm.py seed), which re-announce on USR1.
tracker_reset() {
    tracker_restart
    tracker_wait "$1" 20 --kick "$2" || fail "the tracker never listed exactly the $1 seeder(s)"
}

SWARM_PID=
SWARM_PORTS=()

# swarm_start N TORRENT: N libtorrent seeders of TORRENT in one process,
# saving to $WORK/seed. Waits until all have checked the data (libtorrent
# hashes it: seconds per GiB).
swarm_start() {
    local n=$1 torrent=$2 ports i
    ports="$WORK/swarm.ports"
    rm -f "$ports"
    "$PY" "$HERE/bench_swarm.py" seed --torrent "$torrent" --data "$WORK/seed" --count "$n" \
        --ports-file "$ports" --dial-file "$WORK/dial" >>"$WORK/swarm.log" 2>&1 &
    SWARM_PID=$!
    track_pid "$SWARM_PID"
    for ((i = 0; i < 3000; i++)); do
        [[ -s "$ports" ]] && break
        _e2e_alive "$SWARM_PID" || { tail -n 20 "$WORK/swarm.log" >&2; fail "bench_swarm.py seed exited"; }
        sleep 0.1
    done
    [[ -s "$ports" ]] || fail "bench_swarm.py seed not ready after 300 s"
    mapfile -t SWARM_PORTS <"$ports"
    log "$n libtorrent seeder(s), pid $SWARM_PID, ports ${SWARM_PORTS[*]}"
}

# stop_pid PID: TERM, up to 10 s, then KILL; reaps it.
stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_pid_exit "$pid" 10 >/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    untrack_pid "$pid"
}

# ---- one timed download -----------------------------------------------------

RUN_RC=
RUN_START=
RUN_DIR=

# timed NAME CMD...: runs CMD under `/usr/bin/time -v` (figures in
# $RUN_DIR/NAME.time, output in NAME.log) for at most $DL_TIMEOUT seconds;
# sets RUN_START (epoch seconds, just before the start) and RUN_RC (124 on
# timeout). `timeout` leads its own process group and passes TERM to all of
# it, time and client alike; time alone would die of TERM and leave the
# client running. While CMD runs, the function named in $TIMED_POLL (if any)
# is called every 0.1 s until it returns non-zero.
TIMED_POLL=
timed() {
    local name=$1 pid
    shift
    RUN_RC=0
    RUN_START=$EPOCHREALTIME
    timeout -k 5 "$DL_TIMEOUT" /usr/bin/time -v -o "$RUN_DIR/$name.time" "$@" \
        </dev/null >"$RUN_DIR/$name.log" 2>&1 &
    pid=$!
    track_pid "$pid"
    if [[ -n "$TIMED_POLL" ]]; then
        while _e2e_alive "$pid" && "$TIMED_POLL"; do sleep 0.1; done
    fi
    # `wait` returns at once when a signal comes, so Ctrl-C is not delayed.
    wait "$pid" || RUN_RC=$?
    untrack_pid "$pid"
}

# The clients. Each dl_NAME TORRENT OUT runs one download of TORRENT into
# the directory OUT through timed, and sets DONE_ARGS: where
# bench_report.py finds the moment the data was complete.
DONE_ARGS=()

# ptorrent: --max-peers 200 as aria2c's --bt-max-peers (libtorrent's default
# is 200 too), so the 100-seeder row uses every seeder.
dl_ptorrent() {
    local stats="$RUN_DIR/ptorrent.json"
    timed ptorrent "$PTORRENT" download -t "$1" -o "$2" -q --port "$(free_port)" \
        --max-peers 200 --stats-json "$stats"
    DONE_ARGS=(--stats-json "$stats")
}

# done_hook NAME [SHELL CODE]: a script that writes the time to
# $RUN_DIR/NAME.done, then runs SHELL CODE. Prints its path (absolute:
# transmission-cli runs it from elsewhere).
done_hook() {
    local hook="$RUN_DIR/$1-done.sh"
    printf '#!/bin/sh\ndate +%%s.%%N >"%s"\n%s\n' "$RUN_DIR/$1.done" "${2:-}" >"$hook"
    chmod 755 "$hook"
    echo "$hook"
}

# aria2c: the loopback flags of shared/REAL-PEERS.md; it hashes pieces as
# they come, exits at completion (--seed-time=0) after about 2 s for its
# "stopped" announce, and its hook (run before that) stamps the completion.
dl_aria2c() {
    local hook
    hook=$(done_hook aria2c)
    timed aria2c aria2c --enable-dht=false --enable-dht6=false --bt-enable-lpd=false \
        --enable-peer-exchange=false --interface=127.0.0.1 --disable-ipv6=true \
        --listen-port="$(free_port)" --seed-time=0 --bt-max-peers=200 -d "$2" \
        --file-allocation=none --allow-overwrite=true --summary-interval=0 \
        --console-log-level=warn --show-console-readout=false \
        --on-bt-download-complete="$hook" "$1"
    DONE_ARGS=(--done-file "$RUN_DIR/aria2c.done")
}

dl_libtorrent() {
    timed libtorrent "$PY" "$HERE/bench_swarm.py" leech --torrent "$1" --out "$2" \
        --done-file "$RUN_DIR/libtorrent.done" --timeout "$DL_TIMEOUT"
    DONE_ARGS=(--done-file "$RUN_DIR/libtorrent.done")
}

TR_PORT=
TR_DIALLED=

# tr_poll: while transmission-cli runs, has the seeders dial it once it
# listens, and again every second while no connection is up (it may still be
# checking its empty file and drop the first ones). Returns 1 once one is.
tr_poll() {
    local now=$EPOCHREALTIME
    if [[ -n "$(ss -Htn state established "( sport = :$TR_PORT )" 2>/dev/null)" ]]; then
        return 1 # connected: stop polling
    fi
    port_listening "$TR_PORT" || return 0
    if [[ -z "$TR_DIALLED" ]] || awk -v a="$TR_DIALLED" -v b="$now" 'BEGIN { exit !(b - a >= 1) }'; then
        echo "127.0.0.1:$TR_PORT" >"$WORK/dial"
        kill -USR2 "$SWARM_PID"
        TR_DIALLED=$now
    fi
    return 0
}

# transmission-cli never exits by itself: its -f script stamps the
# completion and sends it SIGINT (the script's parent is transmission-cli),
# on which it says "stopped" to the tracker and exits.
dl_transmission() {
    local conf="$RUN_DIR/transmission.conf" hook
    mkdir -p "$conf"
    TR_PORT=$(free_port)
    TR_DIALLED=
    # shellcheck disable=SC2016 # $PPID is the hook's, expanded when it runs
    hook=$(done_hook transmission 'kill -INT "$PPID"')
    cat >"$conf/settings.json" <<EOF
{
    "bind-address-ipv4": "127.0.0.1",
    "dht-enabled": false,
    "download-dir": "$2",
    "encryption": 1,
    "incomplete-dir-enabled": false,
    "lpd-enabled": false,
    "message-level": 2,
    "peer-limit-global": 400,
    "peer-limit-per-torrent": 200,
    "peer-port": $TR_PORT,
    "peer-port-random-on-start": false,
    "pex-enabled": false,
    "port-forwarding-enabled": false,
    "ratio-limit-enabled": false,
    "idle-seeding-limit-enabled": false,
    "rename-partial-files": false,
    "speed-limit-down-enabled": false,
    "speed-limit-up-enabled": false,
    "alt-speed-enabled": false,
    "utp-enabled": false
}
EOF
    TIMED_POLL=tr_poll
    timed transmission transmission-cli -g "$conf" -w "$2" -p "$TR_PORT" -M -f "$hook" "$1"
    TIMED_POLL=
    DONE_ARGS=(--done-file "$RUN_DIR/transmission.done")
}

# ---- configurations -------------------------------------------------------

FAILED=0

# measure TABLE TAG CLIENT RUN TORRENT CONTENT [record args...]: one
# download by CLIENT, checked with cmp against CONTENT, recorded in
# results.jsonl; the downloaded copy is then removed, so tmpfs holds one at
# a time. Its files are in $WORK/runs/TABLE-TAG-RUN-CLIENT, TAG naming the
# configuration. When SEEDER_PID is set, the CPU time that process used
# meanwhile is recorded.
SEEDER_PID=
measure() {
    local table=$1 tag=$2 client=$3 run=$4 torrent=$5 content=$6 out cmp_ok=0 c0 extra=()
    shift 6
    RUN_DIR="$WORK/runs/$table-$tag-$run-$client"
    out="$RUN_DIR/out"
    # A fresh directory: transmission-cli would resume from an old config.
    rm -rf "$RUN_DIR"
    mkdir -p "$out"
    [[ -z "$SEEDER_PID" ]] || c0=$(proc_cpu "$SEEDER_PID")
    "dl_$client" "$torrent" "$out"
    [[ -z "$SEEDER_PID" ]] ||
        extra=(--seeder-cpu "$(awk -v a="$c0" -v b="$(proc_cpu "$SEEDER_PID")" 'BEGIN { print b - a }')")
    cmp -s -- "$content" "$out/$(basename "$content")" && cmp_ok=1
    "$PY" "$HERE/bench_report.py" record --results "$WORK/results.jsonl" --table "$table" \
        --client "$client" --run "$run" --rc "$RUN_RC" --cmp-ok "$cmp_ok" \
        --time-file "$RUN_DIR/$client.time" --start "$RUN_START" "${DONE_ARGS[@]}" "${extra[@]}" "$@" ||
        fail "bench_report.py record failed"
    if ((RUN_RC != 0 || cmp_ok == 0)); then
        FAILED=$((FAILED + 1))
        log "FAILED: $client ($table, run $run): exit $RUN_RC; output: $RUN_DIR/$client.log"
        tr '\r' '\n' <"$RUN_DIR/$client.log" | grep -v -e '^Progress' -e '^Seeding' | tail -n 8 >&2 || true
    fi
    rm -rf "$out"
}

# rotated K ITEMS...: the items, starting at index K modulo their number.
rotated() {
    local k=$1 i
    shift
    for ((i = 0; i < $#; i++)); do
        echo "${@:$(((k + i) % $# + 1)):1}"
    done
}

# warm_up CLIENT TORRENT N: one download by CLIENT from the N seeders that
# no table counts. A configuration's first download writes into memory that
# making the content and the floor's files have just used, which on the VMs
# we measure on costs differently from later runs: in two full runs, every
# download ptorrent lost to libtorrent was such a first one.
warm_up() {
    local client=$1 torrent=$2 n=$3
    RUN_DIR="$WORK/runs/warmup-$(basename "$torrent" .torrent)-${n}seeders-$client"
    rm -rf "$RUN_DIR"
    mkdir -p "$RUN_DIR/out"
    tracker_reset "$n" "$SWARM_PID"
    "dl_$client" "$torrent" "$RUN_DIR/out"
    ((RUN_RC == 0)) || log "warm-up download by $client failed (exit $RUN_RC); not counted"
    rm -rf "$RUN_DIR/out"
}

# download_config SIZE PIECE N TORRENT CONTENT: a warm-up download, then
# every client RUNS times, from N libtorrent seeders.
download_config() {
    local size=$1 piece=$2 n=$3 torrent=$4 content=$5 run c
    log "== download: $((size >> 20)) MiB, $((piece >> 10)) KiB pieces, $n seeder(s)"
    swarm_start "$n" "$torrent"
    warm_up "${CLIENT_LIST[0]}" "$torrent" "$n"
    for ((run = 1; run <= RUNS; run++)); do
        for c in $(rotated $((run - 1)) "${CLIENT_LIST[@]}"); do
            tracker_reset "$n" "$SWARM_PID"
            measure download "$(basename "$torrent" .torrent)-${n}seeders" "$c" "$run" \
                "$torrent" "$content" \
                --size "$size" --piece "$piece" --seeders "$n"
        done
    done
    stop_pid "$SWARM_PID"
}

# proc_cpu PID: user + system seconds PID has used so far (from /proc).
proc_cpu() {
    local stat
    stat=$(<"/proc/$1/stat") || { echo 0; return; }
    # Fields after the ")" that closes the command name: utime is the 12th.
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / hz }' <<<"${stat##*) }"
}

# pt_seed_start TORRENT: `ptorrent seed` of $WORK/seed-pt on a fresh tracker
# table, listed alone. Sets PT_SEED_PID. It is started anew for each run:
# it announces when it starts, and only on its own schedule after that.
# Returns 1 (with the seeder stopped) if it exits or is not listed in 120 s.
PT_SEED_PID=
pt_seed_start() {
    local port i
    tracker_restart
    ot_wait_hash "$IH" # the whitelist is loaded: its first announce counts
    port=$(free_port)
    "$PTORRENT" seed -t "$1" -d "$WORK/seed-pt" --port "$port" -q \
        --stats-json "$WORK/pt-seed.json" </dev/null >>"$WORK/pt-seed.log" 2>&1 &
    PT_SEED_PID=$!
    track_pid "$PT_SEED_PID"
    for ((i = 0; i < 120; i++)); do
        tracker_wait 1 1 2>/dev/null && return 0
        _e2e_alive "$PT_SEED_PID" || break
    done
    log "FAILED: ptorrent seed (pid $PT_SEED_PID) exited or was never listed; its log:"
    tail -n 5 "$WORK/pt-seed.log" >&2
    stop_pid "$PT_SEED_PID"
    return 1
}

# seed_from_ptorrent LEECHER RUN TORRENT CONTENT SIZE PIECE: one download
# by LEECHER from a lone ptorrent seeder started for it.
seed_from_ptorrent() {
    local l=$1 run=$2 torrent=$3 content=$4 size=$5 piece=$6
    if pt_seed_start "$torrent"; then
        SEEDER_PID=$PT_SEED_PID
        measure seeding "$(basename "$torrent" .torrent)-from-ptorrent" "$l" "$run" \
            "$torrent" "$content" --size "$size" --piece "$piece" --seeder ptorrent
        SEEDER_PID=
        stop_pid "$PT_SEED_PID"
    else
        # A failed run with no figures, so the table shows it.
        FAILED=$((FAILED + 1))
        "$PY" "$HERE/bench_report.py" record --results "$WORK/results.jsonl" \
            --table seeding --client "$l" --run "$run" --rc 125 --cmp-ok 0 \
            --time-file /dev/null --start 0 --size "$size" --piece "$piece" --seeder ptorrent
    fi
}

# seed_from_libtorrent LEECHER RUN TORRENT CONTENT SIZE PIECE LT_PID: one
# download by LEECHER from the libtorrent seeder LT_PID, listed alone.
seed_from_libtorrent() {
    local l=$1 run=$2 torrent=$3 content=$4 size=$5 piece=$6 lt_pid=$7
    tracker_reset 1 "$lt_pid"
    SEEDER_PID=$lt_pid
    measure seeding "$(basename "$torrent" .torrent)-from-libtorrent" "$l" "$run" \
        "$torrent" "$content" --size "$size" --piece "$piece" --seeder libtorrent
    SEEDER_PID=
}

# seeding_config SIZE PIECE TORRENT CONTENT: each leecher downloads from a
# lone ptorrent seeder and from a lone libtorrent seeder, RUNS times, with
# the CPU time the seeder used meanwhile; which seeder goes first alternates
# (by run and leecher). The libtorrent seeder lives through all runs; it
# announces only when told to, so it is not listed while ptorrent seeds.
seeding_config() {
    local size=$1 piece=$2 torrent=$3 content=$4 run i l lt_pid
    log "== seeding: $((size >> 20)) MiB, $((piece >> 10)) KiB pieces"
    # ptorrent seed keeps its resume state in DIR/.ptorrent: a directory of
    # its own (a hard link of the content) keeps the seeders' one clean.
    mkdir -p "$WORK/seed-pt"
    ln -f "$content" "$WORK/seed-pt/"
    swarm_start 1 "$torrent"
    lt_pid=$SWARM_PID
    for ((run = 1; run <= RUNS; run++)); do
        for ((i = 0; i < ${#SEEDING_LEECHERS[@]}; i++)); do
            l=${SEEDING_LEECHERS[i]}
            if (((run + i) % 2)); then
                seed_from_ptorrent "$l" "$run" "$torrent" "$content" "$size" "$piece"
                seed_from_libtorrent "$l" "$run" "$torrent" "$content" "$size" "$piece" "$lt_pid"
            else
                seed_from_libtorrent "$l" "$run" "$torrent" "$content" "$size" "$piece" "$lt_pid"
                seed_from_ptorrent "$l" "$run" "$torrent" "$content" "$size" "$piece"
            fi
        done
    done
    stop_pid "$lt_pid"
    rm -rf "$WORK/seed-pt"
}

# ---- report ----------------------------------------------------------------

header() {
    local cpu
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    echo "## ptorrent benchmark ($(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    echo "- machine: ${cpu:-unknown CPU}, $(nproc) cores, $(uname -sr); load average at start" \
        "$LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg) (other work skews the figures)"
    echo "- data: $DATA_WHERE"
    echo "- clients: ptorrent $PT_SOURCE," \
        "$(aria2c --version 2>/dev/null | head -n 1), $(transmission-cli --version 2>&1 | head -n 1)," \
        "libtorrent $("$PY" -c 'import libtorrent; print(libtorrent.__version__)')"
    echo "- wall: process start to exit (\`/usr/bin/time -v\`); done: start to complete data" \
        "(ptorrent's --stats-json, the others' completion hooks); MiB/s = size / wall;" \
        "CPU = user + system of the client's process tree."
    echo "- Before every download opentracker is restarted (empty table) and the client starts" \
        "only once it lists exactly the seeders. transmission-cli ignores loopback peers from" \
        "trackers, so the seeders dial it; it keeps one connection per IP, so it uses one seeder."
    echo "- libtorrent (2.x) maps files: its peak RSS counts the file's pages it touched."
    echo
}

# report [NOTE]: the Markdown report on stdout (and in --report FILE).
REPORTED=0
report() {
    local text
    REPORTED=1
    text=$({
        header
        [[ -z "${1:-}" ]] || printf '%s\n\n' "$1"
        "$PY" "$HERE/bench_report.py" tables --results "$WORK/results.jsonl"
    })
    echo "$text"
    [[ -z "$REPORT_FILE" ]] || echo "$text" >"$REPORT_FILE"
}

# report_partial: at an early exit (a failure, Ctrl-C), what was measured.
report_partial() {
    ((REPORTED == 0)) && [[ -s "$WORK/results.jsonl" ]] || return 0
    report "**Interrupted: partial results.**"
}

# ---- main ------------------------------------------------------------------

# need_tools: every program the chosen clients and tables drive.
need_tools() {
    local t tools=(opentracker /usr/bin/time timeout ss getconf "$PY")
    [[ " ${CLIENT_LIST[*]} " != *" aria2c "* && $SEEDING == 0 ]] || tools+=(aria2c)
    [[ " ${CLIENT_LIST[*]} " != *" transmission "* ]] || tools+=(transmission-cli)
    for t in "${tools[@]}"; do
        command -v "$t" >/dev/null || fail "$t is not installed (run scripts/deps.sh)"
    done
    "$PY" -c 'import libtorrent' 2>/dev/null || fail "python3-libtorrent is not installed for $PY"
    [[ -x "$PTORRENT" ]] || fail "no ptorrent binary at $PTORRENT"
}

# config_field K [SIZE [PIECE]]: the distinct values of field K (1 size,
# 2 piece, 3 seeders) of the configurations that have that SIZE (and
# PIECE), in the order given: each content and torrent is made once.
config_field() {
    local k=$1 c f
    local -A seen=()
    for c in "${CONFIG_LIST[@]}"; do
        read -r -a f <<<"$c"
        [[ -z "${2:-}" || "${f[0]}" == "$2" ]] || continue
        [[ -z "${3:-}" || "${f[1]}" == "$3" ]] || continue
        [[ -n "${seen[${f[k - 1]}]:-}" ]] && continue
        seen[${f[k - 1]}]=1
        echo "${f[k - 1]}"
    done
}

main() {
    local size piece n content torrent
    parse_args "$@"
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    build
    PTORRENT=${PTORRENT:-$ROOT/build/ptorrent}
    make_workdir
    export E2E_TMP=$WORK
    # shellcheck source=tests/e2e/lib.sh
    . "$ROOT/tests/e2e/lib.sh"
    # lib.sh's free_port binds port 0, which gives a port of the ephemeral
    # range: on a busy loopback an outgoing connection may take it before
    # the client binds it. Ours lies outside that range (bench_swarm.py port),
    # and lib.sh's start_opentracker uses it too, which matters as the
    # tracker is restarted on its port before every download.
    free_port() {
        "$PY" "$HERE/bench_swarm.py" port
    }
    on_cleanup report_partial # first: the removal below comes after it
    if ((KEEP)); then
        log "work directory kept: $WORK"
    else
        # shellcheck disable=SC2016 # expanded at cleanup
        on_cleanup 'rm -rf "$WORK"'
    fi
    need_tools
    log "data in $DATA_WHERE"
    : >"$WORK/results.jsonl"
    start_opentracker "$WORK/ot"
    mkdir -p "$WORK/seed"
    for size in $(config_field 1); do
        DL_TIMEOUT=${USER_TIMEOUT:-$((30 + (size >> 20) / 5))}
        content="$WORK/seed/bench-$((size >> 20))MiB.bin"
        log "making $((size >> 20)) MiB of random data"
        make_random_file "$content" "$size"
        mkdir -p "$WORK/runs" # where the clients write: the floor's store goes there too
        "$PY" "$HERE/bench_report.py" floor --results "$WORK/results.jsonl" \
            --json "$("$PY" "$HERE/bench_floor.py" "$content" "$WORK/runs")"
        for piece in $(config_field 2 "$size"); do
            torrent="$WORK/bench-$((size >> 20))MiB-$((piece >> 10))KiB.torrent"
            "$PY" "$HERE/mktorrent_lt.py" --piece-size "$piece" -a "$ANNOUNCE_URL" -o "$torrent" \
                "$content" >&2
            IH=$(lt_infohash "$torrent")
            opentracker_add_hash "$IH"
            for n in $(config_field 3 "$size" "$piece"); do
                download_config "$size" "$piece" "$n" "$torrent" "$content"
            done
            if ((SEEDING)) && [[ -z "$SEEDING_PAIR" || "$SEEDING_PAIR" == "$size $piece" ]]; then
                seeding_config "$size" "$piece" "$torrent" "$content"
            fi
        done
        rm -f "$content"
    done
    report
    if ((FAILED)); then
        log "$FAILED download(s) failed or differed"
        exit 1
    fi
}

main "$@"
