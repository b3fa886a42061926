#!/usr/bin/env bash
# Choking, seen from the peers: one `ptorrent seed` (--max-upload-rate 4 MiB/s)
# and seven libtorrent leechers (one Python process, seven sessions), each
# connected to ptorrent only (no tracker, no PEX, no LSD: they cannot trade
# among themselves), all interested at once in a 4 MiB torrent. Every 0.2 s
# each leecher reports whether ptorrent is choking it. BEP 3 choking with
# 4 regular slots and 1 optimistic one (src/choker.h) means:
#  - never more than 5 leechers unchoked at once;
#  - at least 4 unchoked at some point (slots are not left idle);
#  - every leecher completes: a finished leecher is no longer interested and
#    frees its slot for the ones still waiting;
# and ptorrent's stats show a full copy uploaded to each of the seven.
# timeout: 120
set -euo pipefail
. "$(dirname "$0")/lib_seed.sh"
need_ptorrent

N=7
SIZE=$((4 * 1024 * 1024 + 99))
make_random_file "$E2E_TMP/seed/file.bin" "$SIZE"
mk_torrent "$E2E_TMP/file.torrent" 262144 "$E2E_TMP/seed/file.bin" "http://127.0.0.1:9/announce"
start_pt_seed seed "$E2E_TMP/file.torrent" "$E2E_TMP/seed" --max-upload-rate 4096

# run_waited gives its command /dev/null as stdin: the script goes in a file.
cat >"$E2E_TMP/choke.py" <<'PYEOF'
import json, os, sys, time
import libtorrent as lt
torrent, out, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ti = lt.torrent_info(torrent)
leechers = []
for i in range(n):
    ses = lt.session({
        "listen_interfaces": "127.0.0.1:0", "outgoing_interfaces": "127.0.0.1",
        "allow_multiple_connections_per_ip": True, "enable_dht": False, "enable_lsd": False,
        "enable_upnp": False, "enable_natpmp": False, "enable_incoming_utp": False,
        "enable_outgoing_utp": False, "max_failcount": 100, "min_reconnect_time": 1})
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = "%s/%d" % (out, i)
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    atp.flags |= lt.torrent_flags.disable_pex
    leechers.append((ses, ses.add_torrent(atp)))
for ses, h in leechers:
    h.connect_peer(("127.0.0.1", port))
t0 = time.monotonic()
max_unchoked, ever_unchoked, done_at, samples = 0, set(), {}, []
next_dial = t0 + 2
while time.monotonic() - t0 < 80 and len(done_at) < n:
    unchoked = 0
    for i, (ses, h) in enumerate(leechers):
        if i in done_at:
            continue
        if h.status().is_seeding:
            done_at[i] = round(time.monotonic() - t0, 2)
            continue
        for p in h.get_peer_info():
            if p.ip[1] == port and not p.flags & lt.peer_info.remote_choked:
                unchoked += 1
                ever_unchoked.add(i)
    max_unchoked = max(max_unchoked, unchoked)
    samples.append(unchoked)
    # Reconnect any leecher that lost its connection.
    if time.monotonic() >= next_dial:
        for i, (ses, h) in enumerate(leechers):
            if i not in done_at and h.status().num_peers == 0:
                print("leecher %d: no connection; dialling again" % i, file=sys.stderr, flush=True)
                h.connect_peer(("127.0.0.1", port))
        next_dial = time.monotonic() + 2
    time.sleep(0.2)
json.dump({"max_unchoked": max_unchoked, "ever_unchoked": sorted(ever_unchoked),
           "done_at": {str(k): v for k, v in sorted(done_at.items())}, "samples": samples}, sys.stdout)
sys.exit(0 if len(done_at) == n else 1)
PYEOF
rc=0
run_waited 90 "$PY" "$E2E_TMP/choke.py" "$E2E_TMP/file.torrent" "$E2E_TMP/leech" "$PTS_PORT" "$N" \
    >"$E2E_TMP/choke.json" 2>"$E2E_TMP/choke.log" || rc=$?
cat "$E2E_TMP/choke.log" >&2
[[ -s "$E2E_TMP/choke.json" ]] || fail "the leechers reported nothing (exit $rc)"
log "leechers: $(cat "$E2E_TMP/choke.json")"
((rc == 0)) || { dl_show seed; fail "not every leecher completed: $(stats_get "$E2E_TMP/choke.json" 's["done_at"]' 2>/dev/null)"; }
J="$E2E_TMP/choke.json"
stats_ok "$J" 's["max_unchoked"] <= 5' "at most 4 regular + 1 optimistic unchoked at once"
stats_ok "$J" 's["max_unchoked"] >= 4' "the upload slots were used"
for ((i = 0; i < N; i++)); do
    assert_cmp "$E2E_TMP/seed/file.bin" "$E2E_TMP/leech/$i/file.bin"
done
pt_stop seed "$PTS_PID" INT 130
stats_ok "$E2E_TMP/seed.json" "sum(1 for p in s['peers'] if p['uploaded'] >= $SIZE) == $N" \
    "a whole copy uploaded to each of the $N leechers"
