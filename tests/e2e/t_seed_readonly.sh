#!/usr/bin/env bash
# `ptorrent seed` only reads the data it seeds, so it must work from a
# read-only file system (a mounted image, a shared archive): a tmpfs holding
# a complete tree (6 MiB, 256 KiB pieces) is remounted read-only, ptorrent
# seeds it, and libtorrent downloads it byte-identical. The resume file
# cannot be written there: a warning is fine, a refusal to seed is not.
# (As root, chmod does not make anything read-only: hence the mount.)
# timeout: 90
set -euo pipefail
. "$(dirname "$0")/lib_seed.sh"
need_ptorrent
[[ $(id -u) == 0 ]] || skip "mounting a read-only tmpfs needs root"

RO="$E2E_TMP/ro"
mkdir -p "$RO"
mount -t tmpfs -o size=16m tmpfs "$RO" || skip "cannot mount a tmpfs here"
track_mount "$RO"
make_random_file "$RO/tree/a/one.bin" $((4 * 1024 * 1024 + 77))
make_random_file "$RO/tree/two.bin" $((2 * 1024 * 1024 - 77))
# A copy outside, to compare with; and the torrent (no tracker: ptorrent is
# dialled directly, but seed wants a tracker or --peer, so give it one that
# is never reached).
cp -a "$RO/tree" "$E2E_TMP/orig"
mk_torrent "$E2E_TMP/tree.torrent" 262144 "$RO/tree" "http://127.0.0.1:9/announce"
mount -o remount,ro "$RO" || skip "cannot remount the tmpfs read-only"
if touch "$RO/probe" 2>/dev/null; then fail "$RO is still writable"; fi

pt_bg seed seed -t "$E2E_TMP/tree.torrent" -d "$RO" --port 0 -v --stats-json "$E2E_TMP/seed.json"
spid=$BG_PID
port=
for ((i = 0; i < 300; i++)); do
    port=$(listen_port_of "$spid")
    [[ -z "$port" ]] || break
    _e2e_alive "$spid" || break
    sleep 0.1
done
if ! _e2e_alive "$spid"; then
    pt_wait seed "$spid" 1
    dl_show seed
    fail "ptorrent seed of a complete read-only directory exited $PT_RC instead of seeding"
fi
[[ -n "$port" ]] || { dl_show seed; fail "ptorrent seed does not listen after 30 s"; }

rc=0
run_waited 60 "$PY" "$E2E_SCRIPTS/lt_swarm.py" leech --torrent "$E2E_TMP/tree.torrent" \
    --out "$E2E_TMP/out" --peer "127.0.0.1:$port" --timeout 50 >"$E2E_TMP/lt.log" 2>&1 || rc=$?
((rc == 0)) || { tail -n 10 "$E2E_TMP/lt.log" >&2; dl_show seed; fail "libtorrent did not download (exit $rc)"; }
assert_tree_eq "$E2E_TMP/orig" "$E2E_TMP/out/tree"
pt_stop seed "$spid" INT 130
stats_ok "$E2E_TMP/seed.json" 's["bytes_uploaded"] >= s["total_size"]' "a whole copy uploaded"
assert_tree_eq "$E2E_TMP/orig" "$RO/tree"
log "warnings: $(grep -c 'warn' "$E2E_TMP/seed.err" || true) (e.g. $(grep -m1 'resume' "$E2E_TMP/seed.err" || true))"
