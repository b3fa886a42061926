# shellcheck shell=bash
# Helpers shared by the seeding and resume end-to-end tests
# (tests/e2e/t_seed_*.sh, t_resume_*.sh). A test sources this file:
#
#     set -euo pipefail
#     . "$(dirname "$0")/lib_seed.sh"
#
# It sources lib_dl.sh (and so lib.sh) and adds: ptorrent started in the
# background with its PID tracked, stopped and checked (pt_bg, pt_wait,
# pt_stop), or run in the foreground (pt_run, pt_dl); seeds on --port 0 with
# the port read back from the process (start_pt_seed, listen_port_of); the
# usual torrent contents; aria2c and transmission-cli as leechers; a
# libtorrent seeder that reports how many bytes it has uploaded (an outside
# measure of what ptorrent downloaded over several runs, killed ones
# included); a libtorrent leecher that reads slowly.

. "$(dirname "${BASH_SOURCE[0]}")/lib_dl.sh"

# ---- ptorrent in the background ---------------------------------------------

BG_PID=

# pt_bg NAME ARGS...: starts `ptorrent ARGS...` in the background with stdout
# in $E2E_TMP/NAME.out and stderr in $E2E_TMP/NAME.err, SIGINT and SIGTERM at
# their default actions (a script's background job starts with SIGINT
# ignored). Sets BG_PID and tracks it.
pt_bg() {
    local name=$1
    shift
    env --default-signal=INT,TERM "$PTORRENT" "$@" \
        </dev/null >"$E2E_TMP/$name.out" 2>"$E2E_TMP/$name.err" &
    BG_PID=$!
    track_pid "$BG_PID"
}

PT_RC=

# pt_wait NAME PID SECS: waits up to SECS for the ptorrent run NAME to exit
# by itself; sets PT_RC and checks its stderr for sanitizer reports. Fails
# the test if it is still running.
pt_wait() {
    local name=$1 pid=$2 secs=$3
    wait_pid_exit "$pid" "$secs" >"$E2E_TMP/$name.rc" ||
        { dl_show "$name"; fail "$name: ptorrent (pid $pid) still running after ${secs}s"; }
    PT_RC=$(<"$E2E_TMP/$name.rc")
    untrack_pid "$pid"
    log "ptorrent ($name): exit $PT_RC"
    tsan_check "$name"
}

# pt_stop NAME PID [SIG] [WANT]: sends SIG (default INT) to the ptorrent run
# NAME and expects it to exit WANT (default 130 for INT, 143 for TERM)
# within 10 s.
pt_stop() {
    local name=$1 pid=$2 sig=${3:-INT} want=${4:-}
    [[ -n "$want" ]] || { [[ "$sig" == TERM ]] && want=143 || want=130; }
    _e2e_alive "$pid" || { dl_show "$name"; fail "$name: ptorrent (pid $pid) exited before SIG$sig"; }
    kill "-$sig" "$pid"
    pt_wait "$name" "$pid" 10
    [[ "$PT_RC" == "$want" ]] ||
        { dl_show "$name"; fail "$name: SIG$sig gave exit $PT_RC, expected $want"; }
}

# listen_port_of PID: the TCP port process PID listens on (the first one),
# from its socket inodes and /proc/net/tcp{,6}; prints nothing if none yet.
# Cheaper than `ss -p` on a busy machine, and exact: no guessing which port
# a program picked.
listen_port_of() {
    local pid=$1 inodes hex
    inodes=$(find "/proc/$pid/fd" -lname 'socket:*' -printf '%l\n' 2>/dev/null |
        sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p' | tr '\n' ' ')
    [[ -n "$inodes" ]] || return 0
    hex=$(awk -v want=" $inodes" '$4 == "0A" && index(want, " " $10 " ") {
        n = split($2, a, ":"); print a[n]; exit }' /proc/net/tcp6 /proc/net/tcp 2>/dev/null)
    [[ -z "$hex" ]] || echo $((16#$hex))
}

# wait_listen NAME PID SECS: waits until the ptorrent run NAME (PID) listens;
# prints its port. Fails if it exits first or does not listen within SECS.
wait_listen() {
    local name=$1 pid=$2 secs=$3 port end=$((SECONDS + $3))
    while ((SECONDS < end)); do
        port=$(listen_port_of "$pid")
        [[ -z "$port" ]] || { echo "$port"; return 0; }
        if ! _e2e_alive "$pid"; then
            pt_wait "$name" "$pid" 1 >&2
            dl_show "$name"
            fail "$name: ptorrent exited $PT_RC before listening"
        fi
        sleep 0.1
    done
    dl_show "$name"
    fail "$name: ptorrent (pid $pid) does not listen after ${secs}s"
}

PTS_PID=
PTS_PORT=

# start_pt_seed NAME TORRENT DIR [ARGS...]: `ptorrent seed -v` of DIR with
# --stats-json $E2E_TMP/NAME.json and --port 0 (the kernel picks a free port:
# no race with the other programs on this machine; the tracker is told the
# port); waits (up to 60 s: the first run hashes every piece, slowly under a
# sanitizer) until it listens. Sets PTS_PID and PTS_PORT.
start_pt_seed() {
    local name=$1 torrent=$2 dir=$3
    shift 3
    pt_bg "$name" seed -t "$torrent" -d "$dir" --port 0 -v --stats-json "$E2E_TMP/$name.json" "$@"
    PTS_PID=$BG_PID
    # Not PTS_PORT=$(wait_listen ...): fail in a subshell would not stop the test.
    wait_listen "$name" "$PTS_PID" 60 >"$E2E_TMP/$name.port"
    PTS_PORT=$(<"$E2E_TMP/$name.port")
    log "ptorrent seed ($name) pid $PTS_PID on port $PTS_PORT"
}

# ---- torrent contents ---------------------------------------------------------

# make_single DIR NAME: DIR/NAME, a single file of 8 MiB + 1000 bytes (a
# partial last piece).
make_single() {
    make_random_file "$1/$2" $((8 * 1024 * 1024 + 1000))
}

# make_tree DIR: DIR holds a tree of about 8 MiB: nested directories, pieces
# that span files, files smaller than a block, an empty file.
make_tree() {
    local t=$1
    make_random_file "$t/big.bin" $((3 * 1024 * 1024 + 17))
    make_random_file "$t/a/b/c/deep.bin" $((2 * 1024 * 1024 + 333))
    make_random_file "$t/a/mid.bin" $((2 * 1024 * 1024 - 5))
    make_random_file "$t/a/b/tiny.bin" 1
    make_random_file "$t/z/small.bin" 16383
    make_random_file "$t/z/y/x/odd.bin" $((700 * 1024 + 3))
    : >"$t/a/empty.dat"
}

# ---- other clients as leechers -------------------------------------------------

# aria2_leech NAME TORRENT OUT_DIR SECS [ARIA2C_OPTION...]: aria2c downloads
# TORRENT into OUT_DIR (finding its peers through the torrent's tracker) and
# exits at completion (--seed-time=0), within SECS; its log is
# $E2E_TMP/NAME.log. Returns aria2c's exit code.
aria2_leech() {
    local name=$1 torrent=$2 out=$3 secs=$4 rc=0
    shift 4
    mkdir -p "$out"
    run_waited "$secs" aria2c --enable-dht=false --enable-dht6=false --bt-enable-lpd=false \
        --enable-peer-exchange=false --interface=127.0.0.1 --disable-ipv6=true \
        --listen-port="$(free_port)" --seed-time=0 --dir="$out" \
        --console-log-level=notice --summary-interval=0 --file-allocation=none \
        --bt-stop-timeout="$secs" --bt-tracker-interval=5 "$@" \
        "$torrent" >"$E2E_TMP/$name.log" 2>&1 || rc=$?
    return "$rc"
}

TR_PID=
TR_PORT=
TR_DONE=

# start_transmission NAME TORRENT OUT_DIR ENCRYPTION: transmission-cli
# downloads TORRENT into OUT_DIR, listening on a free port (TR_PORT) with
# encryption 0 (tolerated: plaintext preferred), 1 (preferred) or 2
# (required). It never exits by itself: its -f script creates TR_DONE at
# completion, and the test stops it (TR_PID). Its configuration is in
# $E2E_TMP/NAME.conf and its output in $E2E_TMP/NAME.log.
start_transmission() {
    local name=$1 torrent=$2 out=$3 enc=$4 conf try i
    conf="$E2E_TMP/$name.conf"
    TR_DONE="$E2E_TMP/$name.done"
    mkdir -p "$conf" "$out"
    rm -f "$TR_DONE"
    cat >"$conf/done.sh" <<EOF
#!/bin/sh
echo "\$TR_TORRENT_NAME" >"$TR_DONE.tmp" && mv "$TR_DONE.tmp" "$TR_DONE"
EOF
    chmod 755 "$conf/done.sh"
    for try in 1 2 3; do
        TR_PORT=$(free_port)
        cat >"$conf/settings.json" <<EOF
{
    "bind-address-ipv4": "127.0.0.1",
    "bind-address-ipv6": "::1",
    "dht-enabled": false,
    "download-dir": "$out",
    "encryption": $enc,
    "incomplete-dir-enabled": false,
    "lpd-enabled": false,
    "message-level": 2,
    "peer-port": $TR_PORT,
    "peer-port-random-on-start": false,
    "pex-enabled": false,
    "port-forwarding-enabled": false,
    "ratio-limit-enabled": false,
    "rename-partial-files": false,
    "speed-limit-down-enabled": false,
    "speed-limit-up-enabled": false,
    "utp-enabled": false
}
EOF
        transmission-cli -g "$conf" -w "$out" -p "$TR_PORT" -M -f "$conf/done.sh" "$torrent" \
            </dev/null >"$E2E_TMP/$name.log" 2>&1 &
        TR_PID=$!
        track_pid "$TR_PID"
        for ((i = 0; i < 100; i++)); do
            port_listening "$TR_PORT" && break
            _e2e_alive "$TR_PID" || break
            sleep 0.1
        done
        if port_listening "$TR_PORT" && _e2e_alive "$TR_PID"; then
            log "transmission-cli ($name) pid $TR_PID on port $TR_PORT"
            return 0
        fi
        echo "lib_seed.sh: transmission-cli try $try failed on port $TR_PORT" >&2
        kill "$TR_PID" 2>/dev/null || true
        wait "$TR_PID" 2>/dev/null || true
        untrack_pid "$TR_PID"
    done
    tail -n 20 "$E2E_TMP/$name.log" >&2
    fail "transmission-cli did not start"
}

# stop_transmission: SIGINT to transmission-cli (it says goodbye to the
# tracker, then exits); KILL if it is still there after 10 s.
stop_transmission() {
    kill -INT "$TR_PID" 2>/dev/null || true
    if ! wait_pid_exit "$TR_PID" 10 >/dev/null; then
        log "transmission-cli ignored SIGINT for 10 s; killing it"
        kill -KILL "$TR_PID" 2>/dev/null || true
        wait "$TR_PID" 2>/dev/null || true
    fi
    untrack_pid "$TR_PID"
}

# ---- a libtorrent seeder that counts what it uploads -----------------------------

CS_PID=
CS_PORT=
CS_COUNT=

# start_counting_seeder TORRENT DATA_DIR KIB: one libtorrent session seeding
# TORRENT from DATA_DIR (its save path), upload limited to KIB KiB/s (0:
# none), no tracker needed: peers dial it on CS_PORT. It writes the payload
# bytes it has uploaded so far (libtorrent's total_payload_upload) to
# CS_COUNT every 0.2 s and at exit. Peers that are SIGKILLed mid-transfer are
# counted too, which is the point: this is what ptorrent received over every
# run, killed ones included.
start_counting_seeder() {
    local torrent=$1 data=$2 kib=$3 portf i
    portf="$E2E_TMP/cs.port"
    CS_COUNT="$E2E_TMP/cs.count"
    rm -f "$portf" "$CS_COUNT"
    "$PY" - "$torrent" "$data" "$kib" "$portf" "$CS_COUNT" >>"$E2E_TMP/counting_seeder.log" 2>&1 <<'PYEOF' &
import os, signal, sys, time
import libtorrent as lt
torrent, data, kib, portf, countf = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
stop = False
def on_sig(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_sig)
signal.signal(signal.SIGINT, on_sig)
ses = lt.session({
    "listen_interfaces": "127.0.0.1:0", "outgoing_interfaces": "127.0.0.1",
    "allow_multiple_connections_per_ip": True, "enable_dht": False, "enable_lsd": False,
    "enable_upnp": False, "enable_natpmp": False, "enable_incoming_utp": False,
    "enable_outgoing_utp": False, "max_failcount": 100, "min_reconnect_time": 1,
    "alert_mask": lt.alert.category_t.error_notification})
if kib:
    f = lt.ip_filter()
    f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
    ses.set_peer_class_filter(f)
    ses.apply_settings({"upload_rate_limit": kib * 1024})
atp = lt.add_torrent_params()
atp.ti = lt.torrent_info(torrent)
atp.save_path = data
atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
h = ses.add_torrent(atp)
ppid = os.getppid()
def put(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
deadline = time.monotonic() + 120
while not stop and not h.status().is_seeding:
    for a in ses.pop_alerts():
        print("seeder:", a.message(), file=sys.stderr, flush=True)
    if time.monotonic() > deadline or os.getppid() != ppid:
        print("seeder: not seeding after 120 s", file=sys.stderr, flush=True)
        sys.exit(1)
    time.sleep(0.1)
put(portf, "%d\n" % ses.listen_port())
while not stop and os.getppid() == ppid:
    put(countf, "%d\n" % h.status().total_payload_upload)
    time.sleep(0.2)
put(countf, "%d\n" % h.status().total_payload_upload)
PYEOF
    CS_PID=$!
    track_pid "$CS_PID"
    for ((i = 0; i < 1200; i++)); do
        [[ -s "$portf" ]] && break
        _e2e_alive "$CS_PID" || break
        sleep 0.1
    done
    [[ -s "$portf" ]] || { tail -n 20 "$E2E_TMP/counting_seeder.log" >&2; fail "counting seeder did not start"; }
    CS_PORT=$(<"$portf")
    wait_port "$CS_PORT" 10
    log "counting libtorrent seeder pid $CS_PID on port $CS_PORT"
}

# seeder_uploaded: the counting seeder's payload bytes uploaded so far.
seeder_uploaded() {
    cat "$CS_COUNT" 2>/dev/null || echo 0
}

# ---- a libtorrent leecher that reads slowly ----------------------------------------

SL_PID=

# start_slow_leecher NAME TORRENT OUT_DIR PEER KIB: one libtorrent session
# downloads TORRENT into OUT_DIR from PEER (HOST:PORT, dialled every 2 s while
# not connected) with its download limited to KIB KiB/s, so that it reads its
# socket slower than a loopback seeder can write: the kernel's buffers hold
# data the seeder has sent and the leecher has not read yet. Exits 0 when
# complete, 1 after 80 s. Log: $E2E_TMP/NAME.log. Sets SL_PID.
start_slow_leecher() {
    local name=$1 torrent=$2 out=$3 peer=$4 kib=$5
    "$PY" - "$torrent" "$out" "$peer" "$kib" >"$E2E_TMP/$name.log" 2>&1 <<'PYEOF' &
import os, sys, time
import libtorrent as lt
torrent, out, peer, kib = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ses = lt.session({
    "listen_interfaces": "127.0.0.1:0", "outgoing_interfaces": "127.0.0.1",
    "allow_multiple_connections_per_ip": True, "enable_dht": False, "enable_lsd": False,
    "enable_upnp": False, "enable_natpmp": False, "enable_incoming_utp": False,
    "enable_outgoing_utp": False, "max_failcount": 100, "min_reconnect_time": 1})
f = lt.ip_filter()
f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
ses.set_peer_class_filter(f)
ses.apply_settings({"download_rate_limit": kib * 1024})
atp = lt.add_torrent_params()
atp.ti = lt.torrent_info(torrent)
atp.save_path = out
atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
h = ses.add_torrent(atp)
host, port = peer.rsplit(":", 1)
ppid, end, next_dial, next_say = os.getppid(), time.monotonic() + 80, 0.0, 0.0
while time.monotonic() < end and os.getppid() == ppid:
    st = h.status()
    if time.monotonic() >= next_say:
        print("slow leecher: %.1f%% (%d of %d bytes), %d peers"
              % (st.progress * 100, st.total_wanted_done, st.total_wanted, st.num_peers), flush=True)
        next_say = time.monotonic() + 1
    if st.is_seeding:
        print("slow leecher: finished", flush=True)
        h.pause()
        del h, ses
        sys.exit(0)
    if st.num_peers == 0 and time.monotonic() >= next_dial:
        h.connect_peer((host, int(port)))
        next_dial = time.monotonic() + 2
    time.sleep(0.1)
print("slow leecher: gave up at %.1f%% with %d peers" % (st.progress * 100, st.num_peers), flush=True)
sys.exit(1)
PYEOF
    SL_PID=$!
    track_pid "$SL_PID"
}

# pt_run NAME SECS ARGS...: runs `ptorrent ARGS...` in the foreground for at
# most SECS seconds, like lib_dl.sh's dl but for any command (seed...) and
# without adding --port. Output in $E2E_TMP/NAME.out and NAME.err; sets DL_RC
# (124 on timeout) and DL_SECS, so expect_rc and expect_one_error apply.
pt_run() {
    local name=$1 secs=$2 t0
    shift 2
    t0=$(now)
    DL_RC=0
    run_waited "$secs" env --default-signal=INT,TERM "$PTORRENT" "$@" \
        >"$E2E_TMP/$name.out" 2>"$E2E_TMP/$name.err" || DL_RC=$?
    DL_SECS=$(elapsed "$t0")
    log "ptorrent $1 ($name): exit $DL_RC in ${DL_SECS}s"
    tsan_check "$name"
}

# pt_dl NAME SECS ARGS...: `ptorrent download --port 0 ARGS...` by pt_run
# (lib_dl.sh's dl gives a port from free_port, which on a busy machine an
# outgoing connection can take first).
pt_dl() {
    local name=$1 secs=$2
    shift 2
    pt_run "$name" "$secs" download --port 0 "$@"
}
