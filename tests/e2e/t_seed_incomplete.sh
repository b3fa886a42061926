#!/usr/bin/env bash
# `ptorrent seed` refuses data it does not fully have, with exit 2 and one
# clear line ("DIR holds K of the N pieces ..."), and leaves DIR as it was
# (no data file created, none changed). Cases, on a two-file torrent (8 MiB,
# 256 KiB pieces):
#  - DIR empty, and DIR missing altogether;
#  - a file one byte short; a file missing; one byte flipped;
#  - a stale resume file that still claims every piece after a file was cut;
#  - the valid resume file of an interrupted download (trusted, no recheck:
#    K must be what that file says).
# And two that are complete: the data as made (serves until SIGTERM, exit
# 143), and the data with bytes appended to a file (every piece verifies:
# either refused with exit 2, or served; never with the file cut back).
# timeout: 120
set -euo pipefail
. "$(dirname "$0")/lib_seed.sh"
need_ptorrent

PIECE=262144
SRC="$E2E_TMP/src"
make_random_file "$SRC/tree/one.bin" $((5 * 1024 * 1024 + 3))
make_random_file "$SRC/tree/sub/two.bin" $((3 * 1024 * 1024 - 3))
NPIECES=32 # 8 MiB in 256 KiB pieces
# A tracker that is never reached: seed needs a tracker or --peer, and
# none of these cases gets as far as announcing.
mk_torrent "$E2E_TMP/tree.torrent" "$PIECE" "$SRC/tree" "http://127.0.0.1:9/announce"
IH=$(lt_infohash "$E2E_TMP/tree.torrent")

# snapshot DIR: a listing of every file under DIR with size, mtime and hash.
snapshot() {
    (cd "$1" && find . -type f ! -path './.ptorrent/*' -printf '%p %s %T@\n' | sort &&
        find . -type f ! -path './.ptorrent/*' -exec sha1sum {} + | sort) 2>/dev/null || true
}

# refuse NAME DIR HAVE: `ptorrent seed` of DIR exits 2 within 60 s saying DIR
# holds HAVE of the 32 pieces; DIR is unchanged.
refuse() {
    local name=$1 dir=$2 have=$3 before
    before=$(snapshot "$dir")
    pt_run "$name" 60 seed -t "$E2E_TMP/tree.torrent" -d "$dir" --port 0
    expect_rc "$name" 2
    expect_one_error "$name" "holds $have of the $NPIECES pieces"
    [[ "$(snapshot "$dir")" == "$before" ]] ||
        { diff <(echo "$before") <(snapshot "$dir") >&2 || true; fail "$name: seed changed $dir"; }
    [[ ! -s "$E2E_TMP/$name.out" ]] || fail "$name: unexpected output on stdout"
}

# fresh NAME: a copy of the complete data in $E2E_TMP/NAME (save path), no
# resume file. Prints the directory.
fresh() {
    rm -rf "${E2E_TMP:?}/$1"
    mkdir -p "$E2E_TMP/$1"
    cp -a "$SRC/tree" "$E2E_TMP/$1/"
    echo "$E2E_TMP/$1"
}

# Nothing there.
mkdir -p "$E2E_TMP/empty"
refuse empty "$E2E_TMP/empty" 0
[[ -z "$(find "$E2E_TMP/empty" -type f)" ]] || fail "empty: seed created files: $(find "$E2E_TMP/empty" -type f)"
refuse missing-dir "$E2E_TMP/no/such/dir" 0
[[ ! -e "$E2E_TMP/no/such/dir/tree" ]] || fail "missing-dir: seed created data"

# Which pieces the damage hits depends on the files' order in the torrent.
piece_of() {
    "$PY" - "$E2E_TMP/tree.torrent" "$1" "$2" <<'PYEOF'
import sys, libtorrent as lt
ti = lt.torrent_info(sys.argv[1])
fs = ti.files()
i = [fs.file_path(k).split("/", 1)[1] for k in range(fs.num_files())].index(sys.argv[2])
print(ti.map_file(i, int(sys.argv[3]), 1).piece)
PYEOF
}

# A file one byte short: the piece holding its last byte is incomplete.
d=$(fresh short)
truncate -s $((3 * 1024 * 1024 - 4)) "$d/tree/sub/two.bin"
refuse short "$d" $((NPIECES - 1))

# A file missing: the pieces it touches are gone. one.bin is 5 MiB + 3: it
# touches 21 pieces (20 whole, one shared) wherever it is in the torrent.
d=$(fresh nofile)
rm "$d/tree/one.bin"
refuse nofile "$d" $((NPIECES - 21))
[[ ! -e "$d/tree/one.bin" ]] || fail "nofile: seed created the missing file"

# One byte flipped in the middle of one.bin.
d=$(fresh flipped)
"$PY" -c 'import sys
f = open(sys.argv[1], "r+b"); f.seek(3000000); b = f.read(1); f.seek(3000000); f.write(bytes([b[0] ^ 1]))' \
    "$d/tree/one.bin"
refuse flipped "$d" $((NPIECES - 1))

# A resume file from when the data was complete, then a file cut: the
# resume file no longer matches the sizes and must not be believed.
d=$(fresh stale)
start_pt_seed stale-ok "$E2E_TMP/tree.torrent" "$d"
pt_stop stale-ok "$PTS_PID" TERM 143
[[ -s "$d/.ptorrent/$IH.resume" ]] || fail "stale-ok: the seed wrote no resume file"
truncate -s $((1024 * 1024)) "$d/tree/one.bin"
p=$(piece_of one.bin $((1024 * 1024)))
first=$(piece_of one.bin 0)
refuse stale "$d" $((NPIECES - (21 - (p - first))))
grep -q 'checking the data on disk' "$E2E_TMP/stale.err" || fail "stale: the stale resume file was not refused"

# The valid resume file of an interrupted download: trusted as it is.
start_lt_seeders "$E2E_TMP/tree.torrent" "$SRC" 1 --upload-rate 1024 --no-announce-wait
pt_bg partial download -t "$E2E_TMP/tree.torrent" -o "$E2E_TMP/partial" --port 0 \
    --peer "127.0.0.1:${LT_SEED_PORTS[0]}" -v
ppid=$BG_PID
sleep 3
pt_stop partial "$ppid" INT 130
kill -TERM "$LT_SEED_PID"
wait_pid_exit "$LT_SEED_PID" 10 >/dev/null || fail "lt_swarm.py ignored TERM"
untrack_pid "$LT_SEED_PID"
RES="$E2E_TMP/partial/.ptorrent/$IH.resume"
[[ -s "$RES" ]] || fail "partial: no resume file after SIGINT"
k=$("$PY" -c 'import sys, re
b = open(sys.argv[1], "rb").read()
m = re.search(rb"6:pieces(\d+):", b)
n = int(m.group(1))
print(sum(bin(x).count("1") for x in b[m.end():m.end() + n]))' "$RES")
log "partial: the resume file marks $k of $NPIECES pieces"
((k > 0 && k < NPIECES)) || fail "partial: wanted an interrupted download, the resume file marks $k pieces"
refuse partial-seed "$E2E_TMP/partial" "$k"
! grep -q 'checking' "$E2E_TMP/partial-seed.err" || fail "partial-seed: rechecked although the resume file was valid"

# Complete: serves until SIGTERM.
d=$(fresh complete)
start_pt_seed complete "$E2E_TMP/tree.torrent" "$d"
sleep 1
pt_stop complete "$PTS_PID" TERM 143
stats_ok "$E2E_TMP/complete.json" 's["command"] == "seed" and s["bytes_downloaded"] == 0' "complete: a seed"
assert_tree_eq "$SRC/tree" "$d/tree"

# Complete, plus 5 bytes appended to a file.
d=$(fresh longer)
printf 'extra' >>"$d/tree/one.bin"
before=$(stat -c %s "$d/tree/one.bin")
pt_bg longer seed -t "$E2E_TMP/tree.torrent" -d "$d" --port 0 -v
lpid=$BG_PID
for ((i = 0; i < 300; i++)); do
    [[ -z "$(listen_port_of "$lpid")" ]] || break
    _e2e_alive "$lpid" || break
    sleep 0.1
done
if _e2e_alive "$lpid"; then
    sleep 1
    pt_stop longer "$lpid" TERM 143
    log "longer: served"
else
    pt_wait longer "$lpid" 1
    [[ "$PT_RC" == 2 ]] || { dl_show longer; fail "longer: exit $PT_RC, expected to serve or exit 2"; }
    log "longer: refused: $(grep '^ptorrent:' "$E2E_TMP/longer.err")"
fi
after=$(stat -c %s "$d/tree/one.bin")
[[ "$after" == "$before" ]] ||
    fail "longer: ptorrent seed changed the data it seeds: one.bin was $before bytes, now $after"
