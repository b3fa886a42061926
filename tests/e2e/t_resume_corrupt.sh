#!/usr/bin/env bash
# The resume file is never trusted blindly. A two-file torrent (6.5 MiB, 26
# pieces of 256 KiB, one piece spanning both files, a partial last piece) is
# downloaded from a libtorrent seeder; then, before each rerun of
# `ptorrent download` into the same directory, something is broken:
#  a. the resume file truncated (half, then empty);
#  b. the resume file replaced by random bytes;
#  c. a data file's mtime changed (touch): the file is stale;
#  d. the resume file re-encoded by hand with a bitfield one byte too long,
#     spare bits set in its last byte, another torrent's info hash, an
#     unknown version;
#  e. the resume file replaced by a directory.
# Each rerun must say it is checking the data on disk, exit 0, download
# nothing (every piece verifies) and leave the data identical; the run after
# it must trust the rewritten resume file.
# Then data damage between runs, with the seeder still there:
#  f. one byte flipped in a verified piece (mid-file; in the piece that spans
#     both files; in the partial last piece): exactly that piece is
#     downloaded again;
#  g. a data file cut short: the pieces it lost are downloaded again.
# timeout: 180
set -euo pipefail
. "$(dirname "$0")/lib_seed.sh"
need_ptorrent
need_cmd opentracker

PIECE=262144
SEED="$E2E_TMP/seed"
T="$SEED/tree"
make_random_file "$T/a/one.bin" $((3 * 1024 * 1024 + 5))
make_random_file "$T/b/c/two.bin" $((3 * 1024 * 1024 + 512 * 1024 - 7))
SIZE=$((6 * 1024 * 1024 + 512 * 1024 - 2))

start_opentracker "$E2E_TMP/ot"
mk_torrent "$E2E_TMP/tree.torrent" "$PIECE" "$T" "$ANNOUNCE_URL"
IH=$(lt_infohash "$E2E_TMP/tree.torrent")
opentracker_add_hash "$IH"
start_lt_seeders "$E2E_TMP/tree.torrent" "$SEED" 1
ot_wait_seeders "$IH" 1

OUT="$E2E_TMP/out"
RES="$OUT/.ptorrent/$IH.resume"
ARGS=(-t "$E2E_TMP/tree.torrent" -o "$OUT" -v)

pt_dl first 90 "${ARGS[@]}" --stats-json "$E2E_TMP/first.json"
expect_rc first 0
assert_tree_eq "$T" "$OUT/tree"
[[ -s "$RES" ]] || fail "no resume file at $RES after a complete download"
cp "$RES" "$E2E_TMP/good.resume"

# rerun NAME: `ptorrent download` again; it must exit 0 with identical data
# and the stats in NAME.json.
rerun() {
    pt_dl "$1" 60 "${ARGS[@]}" --stats-json "$E2E_TMP/$1.json"
    expect_rc "$1" 0
    assert_tree_eq "$T" "$OUT/tree"
    stats_ok "$E2E_TMP/$1.json" 's["result"] == "complete" and s["pieces_failed"] == 0' "$1: complete"
}

# expect_recheck NAME: NAME's log says the resume file was refused and the
# data rechecked; it downloaded nothing; the next run trusts the new file.
expect_recheck() {
    local line
    line=$(grep -m1 'checking the data on disk' "$E2E_TMP/$1.err" || true)
    [[ -n "$line" ]] || { dl_show "$1"; fail "$1: no recheck in the log"; }
    ! grep -q 'resume file accepted' "$E2E_TMP/$1.err" || fail "$1: accepted a broken resume file"
    log "$1: $line"
    stats_ok "$E2E_TMP/$1.json" 's["bytes_downloaded"] == 0' "$1: every piece verified, nothing downloaded"
    rerun "$1-next"
    grep -q 'resume file accepted' "$E2E_TMP/$1-next.err" ||
        { dl_show "$1-next"; fail "$1-next: the resume file written after the recheck was not trusted"; }
    stats_ok "$E2E_TMP/$1-next.json" 's["bytes_downloaded"] == 0' "$1-next: nothing downloaded"
}

# The baseline: an untouched resume file is trusted.
rerun trusted
grep -q 'resume file accepted' "$E2E_TMP/trusted.err" || { dl_show trusted; fail "a valid resume file was not trusted"; }
! grep -q 'checking' "$E2E_TMP/trusted.err" || fail "trusted: rechecked although the resume file was valid"

# a. Truncated.
truncate -s $(($(stat -c %s "$RES") / 2)) "$RES"
rerun trunc-half
expect_recheck trunc-half
: >"$RES"
rerun trunc-empty
expect_recheck trunc-empty

# b. Garbage of the same size.
head -c "$(stat -c %s "$E2E_TMP/good.resume")" /dev/urandom >"$RES"
rerun garbage
expect_recheck garbage

# c. Stale: a data file's mtime moves, its bytes do not.
touch -d '@1000000000' "$OUT/tree/b/c/two.bin"
rerun stale
expect_recheck stale

# d. Re-encoded by hand. resume_edit PY_STMT: decodes the current (valid)
# resume file into `d` (a dict with bytes keys), runs PY_STMT, writes it back.
resume_edit() {
    "$PY" - "$RES" "$1" <<'PYEOF' || fail "resume_edit failed: $1"
import sys
path, stmt = sys.argv[1], sys.argv[2]
def dec(b, i):
    c = b[i:i + 1]
    if c == b"i":
        j = b.index(b"e", i)
        return int(b[i + 1:j]), j + 1
    if c == b"l":
        i, out = i + 1, []
        while b[i:i + 1] != b"e":
            v, i = dec(b, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        i, out = i + 1, {}
        while b[i:i + 1] != b"e":
            k, i = dec(b, i)
            out[k], i = dec(b, i)
        return out, i + 1
    j = b.index(b":", i)
    n = int(b[i:j])
    return b[j + 1:j + 1 + n], j + 1 + n
def enc(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(enc(x) for x in v) + b"e"
    return b"d" + b"".join(enc(k) + enc(v[k]) for k in sorted(v)) + b"e"
raw = open(path, "rb").read()
d, end = dec(raw, 0)
assert end == len(raw) and enc(d) == raw, "the resume file is not canonical bencode"
exec(stmt)
open(path, "wb").write(enc(d))
PYEOF
}
# Sanity: decoding and re-encoding alone keeps the file valid and trusted.
resume_edit 'assert len(d[b"pieces"]) == 4 and d[b"pieces"][-1] == 0xc0, d[b"pieces"]'
rerun reencoded
grep -q 'resume file accepted' "$E2E_TMP/reencoded.err" || fail "a re-encoded valid resume file was refused"

resume_edit 'd[b"pieces"] += b"\xff"'
rerun bitfield-long
expect_recheck bitfield-long
resume_edit 'd[b"pieces"] = d[b"pieces"][:-1] + b"\xff"'
rerun spare-bits
expect_recheck spare-bits
resume_edit 'd[b"info-hash"] = bytes(20)'
rerun foreign-hash
expect_recheck foreign-hash
resume_edit 'd[b"version"] = 2'
rerun version2
expect_recheck version2

# e. A directory where the resume file should be. The data is rechecked;
# saving may fail (that is worth a warning, not a failed download).
rm -f "$RES"
mkdir -p "$RES/sub"
rerun resume-dir
grep -q 'checking the data on disk' "$E2E_TMP/resume-dir.err" || { dl_show resume-dir; fail "resume-dir: no recheck"; }
stats_ok "$E2E_TMP/resume-dir.json" 's["bytes_downloaded"] == 0' "resume-dir: nothing downloaded"
log "resume-dir: $(grep -m1 -i 'resume' "$E2E_TMP/resume-dir.err" | tail -n 1)"
rm -rf "$RES"
rerun after-dir

# f. Data damage. flip FILE OFFSET: inverts one byte of FILE in place
# (same size; the mtime changes, as any write's does).
flip() {
    "$PY" - "$1" "$2" <<'PYEOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    b = f.read(1)
    f.seek(int(sys.argv[2]))
    f.write(bytes([b[0] ^ 0xff]))
PYEOF
}
# refetch NAME FILE OFFSET PIECE_BYTES: flip a byte, rerun, and expect that
# piece (PIECE_BYTES long) to be downloaded again and nothing else.
refetch() {
    local name=$1 file=$2 off=$3 want=$4
    flip "$OUT/tree/$file" "$off"
    ! cmp -s "$T/$file" "$OUT/tree/$file" || fail "$name: the flip changed nothing"
    rerun "$name"
    grep -q 'checking the data on disk' "$E2E_TMP/$name.err" || { dl_show "$name"; fail "$name: no recheck"; }
    stats_ok "$E2E_TMP/$name.json" "s['bytes_downloaded'] == $want" \
        "$name: exactly the damaged piece ($want bytes) downloaded again"
}
# Offsets in torrent order: libtorrent lists files in directory order, which
# depends on the file system, so ask the torrent. tinfo PY_EXPR prints
# PY_EXPR over `ti` (the torrent) and `files` (relative paths, torrent order).
tinfo() {
    "$PY" - "$E2E_TMP/tree.torrent" "$1" <<'PYEOF'
import sys, libtorrent as lt
ti = lt.torrent_info(sys.argv[1])
fs = ti.files()
files = [fs.file_path(i).split("/", 1)[1] for i in range(fs.num_files())]
def piece_of(path, off):
    return ti.map_file(files.index(path), off, 1).piece
print(eval(sys.argv[2]))
PYEOF
}
# flip_piece NAME FILE OFFSET: refetch with the size of the piece that holds
# FILE's byte OFFSET.
flip_piece() {
    local p want
    p=$(tinfo "piece_of('$2', $3)")
    want=$(tinfo "ti.piece_size($p)")
    log "$1: byte $3 of $2 is in piece $p ($want bytes)"
    refetch "$1" "$2" "$3" "$want"
}
FIRST=$(tinfo 'files[0]')
SECOND=$(tinfo 'files[1]')
FIRST_LEN=$(stat -c %s "$T/$FIRST")
SECOND_LEN=$(stat -c %s "$T/$SECOND")
log "torrent order: $FIRST ($FIRST_LEN bytes), $SECOND ($SECOND_LEN bytes)"
flip_piece flip-mid "$FIRST" $((5 * PIECE + 1234))
# The piece that spans both files, from either side.
[[ $(tinfo "piece_of('$FIRST', $FIRST_LEN - 1) == piece_of('$SECOND', 0)") == True ]] ||
    fail "no piece spans $FIRST and $SECOND"
flip_piece flip-span-end "$FIRST" $((FIRST_LEN - 1))
flip_piece flip-span-start "$SECOND" 0
# The partial last piece.
[[ $(tinfo "piece_of('$SECOND', $SECOND_LEN - 1)") == 25 ]] || fail "the last byte is not in piece 25"
flip_piece flip-last "$SECOND" $((SECOND_LEN - 1))

# g. The second file cut to 1 MiB + 100 bytes: the piece holding its new end
# and all after it are fetched again.
truncate -s $((1024 * 1024 + 100)) "$OUT/tree/$SECOND"
rerun cut
grep -q 'checking the data on disk' "$E2E_TMP/cut.err" || { dl_show cut; fail "cut: no recheck"; }
p=$(tinfo "piece_of('$SECOND', 1024 * 1024 + 100)")
want=$((SIZE - p * PIECE))
stats_ok "$E2E_TMP/cut.json" "s['bytes_downloaded'] == $want" \
    "cut: pieces $p..25 ($want bytes) downloaded again"
