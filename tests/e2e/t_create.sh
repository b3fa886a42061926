#!/usr/bin/env bash
# `ptorrent create` makes torrents other software agrees with:
#  - libtorrent reads each one; its info hash equals `ptorrent info --json`'s;
#    its files (paths, sizes, order: byte order of the paths, symlinks left
#    out, empty and hidden files kept), piece length, private flag and tracker
#    tiers are the expected ones; every piece hash equals SHA-1 computed here
#    over the files' bytes (single file; a tree; -l 16K; --private with two -a
#    tiers; the default piece length);
#  - --no-date output is byte-identical from one run to the next;
#  - mktorrent 1.1 given the same file or tree, piece length, tracker and
#    private flag (and -d) makes the same info dictionary: equal info hashes
#    (trees without symlinks: mktorrent follows them, ptorrent leaves them out);
#  - exit codes: 1 bad -l, 2 missing PATH or nothing to share, 3 OUT exists;
#  - a real transfer: torrents made by ptorrent, seeded by libtorrent through
#    opentracker, downloaded by `ptorrent download`, byte-identical.
# timeout: 240
set -euo pipefail
# shellcheck source=tests/e2e/lib_dl.sh
. "$(dirname "$0")/lib_dl.sh"
need_ptorrent
"$PTORRENT" create --help >/dev/null 2>&1 ||
    skip "'ptorrent create --help' fails: the create command is not wired into cli.c yet"
need_cmd mktorrent opentracker

DATA="$E2E_TMP/data"
T="$E2E_TMP/torrents"
mkdir -p "$DATA" "$T"

# ---- data ----------------------------------------------------------------------

# 40 MiB: the default piece length is 32 KiB (1,281 pieces), not the floor.
make_random_file "$DATA/single/single.bin" $((40 * 1024 * 1024 + 12345))
TREE="$DATA/tree/tree"
make_random_file "$TREE/top.bin" 300001
make_random_file "$TREE/a/mid.txt" 4097
make_random_file "$TREE/a.txt" 5 # '.' sorts before '/': before a/...
make_random_file "$TREE/a/b/c/deep.bin" $((2 * 1024 * 1024 + 1))
make_random_file "$TREE/a/b/sibling.bin" 65536
make_random_file "$TREE/sp ace/ünï.bin" 777
make_random_file "$TREE/.hidden" 3
make_random_file "$TREE/Upper.bin" 1000 # uppercase sorts before lowercase
: >"$TREE/a/empty.dat"
ln -s top.bin "$TREE/link-to-file"
ln -s a "$TREE/link-to-dir"

# ---- helpers -------------------------------------------------------------------

# pt_create NAME ARGS...: `ptorrent create ARGS... -o $T/NAME.torrent`; must exit 0.
pt_create() {
    local name=$1 rc=0
    shift
    run_bounded 60 "$PTORRENT" create "$@" -o "$T/$name.torrent" \
        >"$E2E_TMP/create.$name.out" 2>"$E2E_TMP/create.$name.err" || rc=$?
    tsan_check "create.$name"
    if ((rc != 0)); then
        cat "$E2E_TMP/create.$name.err" >&2
        fail "ptorrent create ($name) exited $rc"
    fi
    [[ -s "$T/$name.torrent" ]] || fail "ptorrent create ($name) wrote no $T/$name.torrent"
}

# pt_hash TORRENT: the info hash `ptorrent info --json` reports.
pt_hash() {
    "$PTORRENT" info --json "$1" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["info_hash"])'
}

# check_torrent NAME DATA_PATH PIECE_LEN PRIVATE TIERS_JSON: libtorrent reads
# $T/NAME.torrent and it describes DATA_PATH as described at the top.
# PIECE_LEN 0 means "the default": 1,000-2,000 pieces unless at a limit.
check_torrent() {
    local name=$1 path=$2 plen=$3 priv=$4 tiers=$5
    "$PTORRENT" info --json "$T/$name.torrent" >"$E2E_TMP/info.$name.json" ||
        fail "ptorrent info cannot read its own $name.torrent"
    "$PY" - "$T/$name.torrent" "$path" "$plen" "$priv" "$tiers" "$E2E_TMP/info.$name.json" <<'EOF' ||
import hashlib, json, os, sys
import libtorrent as lt

torrent, path, plen, priv, tiers, info_json = sys.argv[1:]
plen, priv, tiers = int(plen), priv == "1", json.loads(tiers)
pt = json.load(open(info_json))
errors = []

def check(cond, what):
    if not cond:
        errors.append(what)

ti = lt.torrent_info(torrent)
fs = ti.files()
check(str(ti.info_hashes().v1) == pt["info_hash"],
      f"info hash: libtorrent {ti.info_hashes().v1}, ptorrent {pt['info_hash']}")

# The files a walk should find: regular files only (no symlinks), sorted by
# the bytes of their paths below PATH.
name = os.path.basename(path.rstrip("/"))
if os.path.isdir(path):
    want = []
    for d, dirs, files in os.walk(path):
        for f in files:
            full = os.path.join(d, f)
            if os.path.isfile(full) and not os.path.islink(full):
                rel = os.path.relpath(full, path)
                want.append((os.fsencode(rel), os.path.getsize(full), full))
    want.sort()
    want = [(name + "/" + os.fsdecode(r), n, full) for r, n, full in want]
else:
    want = [(name, os.path.getsize(path), path)]
lt_files = [(fs.file_path(i).replace(os.sep, "/"), fs.file_size(i)) for i in range(fs.num_files())]
pt_files = [(f["path"], f["size"]) for f in pt["files"]]
check(lt_files == [(p, n) for p, n, _ in want], f"files (libtorrent): {lt_files}\n  want {want}")
check(pt_files == lt_files, f"files (ptorrent info): {pt_files}")
check(ti.name() == name, f"name {ti.name()!r}, want {name!r}")

total = sum(n for _, n, _ in want)
if plen:
    check(ti.piece_length() == plen, f"piece length {ti.piece_length()}, want {plen}")
else:
    n = ti.num_pieces()
    check(1000 <= n <= 2000 or ti.piece_length() in (16384, 16 << 20),
          f"default piece length {ti.piece_length()} gives {n} pieces")
check(pt["piece_length"] == ti.piece_length(), "piece length differs from ptorrent info")
check(ti.priv() == priv, f"private flag {ti.priv()}, want {priv}")
got_tiers = {}
for t in ti.trackers():
    got_tiers.setdefault(t.tier, []).append(t.url)
got_tiers = [got_tiers[k] for k in sorted(got_tiers)]
check(got_tiers == tiers, f"tiers {got_tiers}, want {tiers}")

# Every piece hash, from the bytes on disk.
data = b"".join(open(full, "rb").read() for _, _, full in want)
check(len(data) == total == ti.total_size(), "total size")
pl = ti.piece_length()
check(ti.num_pieces() == (total + pl - 1) // pl, "piece count")
bad = [i for i in range(ti.num_pieces())
       if hashlib.sha1(data[i * pl:(i + 1) * pl]).digest() != ti.hash_for_piece(i)]
check(not bad, f"pieces with a wrong hash: {bad[:10]}")

for e in errors:
    print("check_torrent:", e, file=sys.stderr)
sys.exit(1 if errors else 0)
EOF
        fail "$name.torrent does not describe $path as expected"
    log "checked $name.torrent: $(pt_hash "$T/$name.torrent")"
}

# expect_exit WANT ARGS...: `ptorrent create ARGS...` exits WANT.
expect_exit() {
    local want=$1 rc=0
    shift
    run_bounded 30 "$PTORRENT" create "$@" >"$E2E_TMP/exit.out" 2>"$E2E_TMP/exit.err" || rc=$?
    if ((rc != want)); then
        cat "$E2E_TMP/exit.err" >&2
        fail "ptorrent create $* exited $rc, expected $want"
    fi
}

U1="http://127.0.0.1:9/announce"
U2="udp://127.0.0.1:9"

# ---- torrents libtorrent agrees with --------------------------------------------

pt_create single -a "$U1" "$DATA/single/single.bin"
check_torrent single "$DATA/single/single.bin" 0 0 "[[\"$U1\"]]"
pt_create single16k -l 16K -a "$U1" "$DATA/single/single.bin"
check_torrent single16k "$DATA/single/single.bin" 16384 0 "[[\"$U1\"]]"
pt_create tree -a "$U1" "$TREE"
check_torrent tree "$TREE" 0 0 "[[\"$U1\"]]"
grep -q "left out 2 symbolic links" "$E2E_TMP/create.tree.err" ||
    fail "no note about the 2 symlinks left out: $(cat "$E2E_TMP/create.tree.err")"
pt_create tree16k -l 14 -a "$U1" "$TREE/"
check_torrent tree16k "$TREE" 16384 0 "[[\"$U1\"]]"
pt_create treepriv --private -a "$U1" -a "$U2" -l 64K -c "made by t_create" "$TREE"
check_torrent treepriv "$TREE" 65536 1 "[[\"$U1\"], [\"$U2\"]]"
pt_create trackerless "$DATA/single/single.bin"
check_torrent trackerless "$DATA/single/single.bin" 0 0 "[]"
grep -q "warning: no tracker" "$E2E_TMP/create.trackerless.err" || fail "no warning without -a"

# ---- reproducible with --no-date ------------------------------------------------

pt_create nodate1 --no-date -a "$U1" "$TREE"
pt_create nodate2 --no-date -a "$U1" "$TREE"
assert_cmp "$T/nodate1.torrent" "$T/nodate2.torrent"
"$PY" -c 'import sys, libtorrent as lt
sys.exit(0 if lt.torrent_info(sys.argv[1]).creation_date() == 0 else 1)' "$T/nodate1.torrent" ||
    fail "--no-date torrent has a creation date"

# ---- the same info dictionary as mktorrent --------------------------------------

# mk_same NAME MKTORRENT_ARGS -- PTORRENT_ARGS -- PATH: equal info hashes.
mk_same() {
    local name=$1 mk=() pt=() path
    shift
    while [[ $1 != -- ]]; do mk+=("$1"); shift; done
    shift
    while [[ $1 != -- ]]; do pt+=("$1"); shift; done
    path=$2
    mktorrent -d "${mk[@]}" -o "$T/$name.mk.torrent" "$path" >/dev/null ||
        fail "mktorrent failed for $name"
    pt_create "$name" --no-date "${pt[@]}" "$path"
    local a b
    a=$(pt_hash "$T/$name.torrent")
    b=$(pt_hash "$T/$name.mk.torrent")
    [[ "$a" == "$b" ]] || {
        "$PTORRENT" info "$T/$name.torrent" >&2
        "$PTORRENT" info "$T/$name.mk.torrent" >&2
        fail "$name: info hash $a (ptorrent) differs from $b (mktorrent)"
    }
    log "$name: same info hash as mktorrent ($a)"
}
mk_same mk_single -l 18 -a "$U1" -- -l 18 -a "$U1" -- "$DATA/single/single.bin"
mk_same mk_single_priv -l 15 -p -a "$U1" -- -l 32K --private -a "$U1" -- "$DATA/single/single.bin"
# mktorrent follows symlinks where ptorrent leaves them out: compare trees
# without any.
PLAIN="$DATA/plain/tree"
mkdir -p "$DATA/plain"
cp -a "$TREE" "$PLAIN"
find "$PLAIN" -type l -delete
mk_same mk_tree -l 16 -a "$U1" -- -l 64K -a "$U1" -- "$PLAIN"
mk_same mk_tree_priv -l 20 -p -a "$U1" -- -l 1M -p -a "$U1" -- "$PLAIN"

# ---- exit codes -------------------------------------------------------------------

mkdir -p "$DATA/empty/sub" && : >"$DATA/empty/sub/zero"
expect_exit 1 -l 17K -o "$T/x.torrent" "$DATA/single/single.bin"
expect_exit 1 -l 13 -o "$T/x.torrent" "$DATA/single/single.bin"
expect_exit 1 -l 32M -o "$T/x.torrent" "$DATA/single/single.bin"
expect_exit 1 "$DATA/single/single.bin" # no -o
expect_exit 2 -o "$T/x.torrent" "$DATA/no-such-file"
grep -q "no-such-file" "$E2E_TMP/exit.err" || fail "the missing PATH is not named"
expect_exit 2 -o "$T/x.torrent" "$DATA/empty"
grep -q "nothing to share" "$E2E_TMP/exit.err" || fail "no 'nothing to share' for an empty tree"
[[ ! -e "$T/x.torrent" ]] || fail "a failed create left $T/x.torrent"
cp "$T/single.torrent" "$T/keep.torrent"
expect_exit 3 -a "$U1" -o "$T/single.torrent" "$TREE"
assert_cmp "$T/single.torrent" "$T/keep.torrent"
expect_exit 0 --force -a "$U1" -o "$T/single.torrent" "$TREE"
[[ -z "$(find "$T" -name '*.tmp-*')" ]] || fail "temporary files left in $T"

# ---- a real transfer: libtorrent seeds what ptorrent made ---------------------------

start_opentracker "$E2E_TMP/ot"

# transfer NAME SAVE_PATH CONTENT ARGS...: a torrent of CONTENT (SAVE_PATH/NAME
# of the content) with ARGS, seeded by libtorrent from SAVE_PATH, downloaded.
transfer() {
    local name=$1 save=$2 content=$3 ih
    shift 3
    pt_create "$name" "$@" "$content"
    ih=$(pt_hash "$T/$name.torrent")
    [[ "$ih" == "$(lt_infohash "$T/$name.torrent")" ]] || fail "$name: info hashes differ"
    opentracker_add_hash "$ih"
    start_lt_seeders "$T/$name.torrent" "$save" 1
    ot_wait_seeders "$ih" 1
    dl "$name" 90 -t "$T/$name.torrent" -o "$E2E_TMP/out.$name" -v
    expect_rc "$name" 0
    kill -TERM "$LT_SEED_PID"
    wait_pid_exit "$LT_SEED_PID" 10 >/dev/null || fail "lt_swarm.py ignored TERM"
    untrack_pid "$LT_SEED_PID"
}

transfer xsingle "$DATA/single" "$DATA/single/single.bin" -l 16K -a "$ANNOUNCE_URL"
assert_cmp "$DATA/single/single.bin" "$E2E_TMP/out.xsingle/single.bin"

# Private, two tiers (the live tracker first), pieces spanning files.
transfer xtree "$DATA/tree" "$TREE" --private -l 32K -a "$ANNOUNCE_URL" -a "$U1"
(cd "$TREE" && find . -type f | LC_ALL=C sort) >"$E2E_TMP/tree.want"
(cd "$E2E_TMP/out.xtree/tree" && find . -type f | LC_ALL=C sort) >"$E2E_TMP/tree.got"
diff "$E2E_TMP/tree.want" "$E2E_TMP/tree.got" >&2 || fail "downloaded tree has other files"
while IFS= read -r f; do
    assert_cmp "$TREE/$f" "$E2E_TMP/out.xtree/tree/$f"
done <"$E2E_TMP/tree.want"
log "ptorrent-made torrents downloaded from libtorrent, byte-identical"

# ---- and the other way: libtorrent downloads from `ptorrent seed` -------------
# The same ptorrent-made torrent, ptorrent as the only seeder (dialled
# directly by libtorrent with --peer, so no tracker is involved).
SEED_PORT=$(free_port)
"$PTORRENT" seed -t "$T/xsingle.torrent" -d "$DATA/single" --port "$SEED_PORT" -q \
    >"$E2E_TMP/seed.out" 2>"$E2E_TMP/seed.err" &
SEED_PID=$!
track_pid "$SEED_PID"
wait_port "$SEED_PORT" 30 || fail "ptorrent seed did not listen on $SEED_PORT"
run_bounded 90 "$PY" "$E2E_SCRIPTS/lt_swarm.py" leech --torrent "$T/xsingle.torrent" \
    --out "$E2E_TMP/lt.xsingle" --peer "127.0.0.1:$SEED_PORT" --timeout 80 \
    >"$E2E_TMP/lt.out" 2>&1 || { tail -5 "$E2E_TMP/lt.out" >&2; fail "libtorrent could not download from ptorrent seed"; }
assert_cmp "$DATA/single/single.bin" "$E2E_TMP/lt.xsingle/single.bin"
log "libtorrent downloaded the ptorrent-made torrent from ptorrent seed, byte-identical"
