#!/usr/bin/env bash
# `ptorrent info --json` agrees with libtorrent on torrents made now by two
# independent tools (mktorrent 1.1 and libtorrent's create_torrent): info
# hash, piece length and count, total size, files (paths, sizes, order),
# private flag and tracker tiers; comment, created_by and creation_date agree
# with the raw metainfo. Plain `ptorrent info` exits 0 and shows the hash.
# timeout: 120
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need_ptorrent
need_cmd mktorrent

FIX="$E2E_TMP/fixtures"
DATA="$E2E_TMP/data"
mkdir -p "$FIX" "$DATA"

# Sizes are chosen to end in a partial piece unless the name says "exact".
make_data() {
    make_random_file "$DATA/single-odd.bin" $((1000 * 1000 + 1))
    make_random_file "$DATA/small.bin" 100007
    make_random_file "$DATA/exact-2m.bin" $((2 * 1024 * 1024))
    make_random_file "$DATA/one-byte.bin" 1
    # A tree with nested directories, an empty file, a space and UTF-8 in names.
    local t="$DATA/tree"
    make_random_file "$t/top.bin" 300001
    make_random_file "$t/a/mid.txt" 4097
    make_random_file "$t/a/b/c/deep.bin" 1048577
    make_random_file "$t/a/b/sibling.bin" 65536
    make_random_file "$t/sp ace/ünï.bin" 777
    : >"$t/a/empty.dat"
}

# mk NAME TOOL ARGS... PATH: makes $FIX/NAME.torrent with mktorrent or
# scripts/mktorrent_lt.py.
mk() {
    local name=$1 tool=$2
    shift 2
    case $tool in
    mktorrent) mktorrent -o "$FIX/$name.torrent" "$@" >/dev/null ;;
    lt) "$PY" "$E2E_SCRIPTS/mktorrent_lt.py" -o "$FIX/$name.torrent" "$@" ;;
    esac
    [[ -s "$FIX/$name.torrent" ]] || fail "could not make fixture $name"
}

make_fixtures() {
    local u="http://127.0.0.1:9/announce" v="http://[::1]:9/announce" w="udp://127.0.0.1:9"
    # mktorrent: 2^15 and 2^18 pieces, single and multi-file, several tiers.
    mk mk_single_l15 mktorrent -l 15 -a "$u" -a "$v,$w" -a "http://127.0.0.2:9/a" \
        "$DATA/single-odd.bin"
    mk mk_multi_l18 mktorrent -l 18 -a "$u" -a "$v" -c "made by mktorrent" "$DATA/tree"
    mk mk_multi_l15_private_nodate mktorrent -l 15 -p -d -a "$u,$v,$w" "$DATA/tree"
    mk mk_single_exact_l18 mktorrent -l 18 -a "$u" "$DATA/exact-2m.bin"
    # libtorrent: 16 KiB and 1 MiB pieces, private, comment, no trackers.
    mk lt_single_16k lt --piece-size 16384 -a "$u" "$DATA/small.bin"
    mk lt_single_1m lt --piece-size 1048576 -a "$u" -a "$v" "$DATA/single-odd.bin"
    mk lt_single_1byte lt --piece-size 16384 "$DATA/one-byte.bin"
    mk lt_multi_16k lt --piece-size 16384 -a "$u,$v" -a "$w" --comment "a comment, with ünïcode" \
        "$DATA/tree"
    mk lt_multi_1m_private lt --piece-size 1048576 --private -a "$u" --comment "" \
        --creator "e2e fixtures" "$DATA/tree"
}

# check_json TORRENT JSON_FILE: compares ptorrent's JSON with libtorrent and
# the raw metainfo; prints a diff of the fields that differ.
check_json() {
    "$PY" - "$1" "$2" <<'EOF'
import json, sys
import libtorrent as lt

torrent, out = sys.argv[1], sys.argv[2]
text = open(out, encoding="utf-8").read()
try:
    got = json.loads(text)
except ValueError as e:
    sys.exit(f"stdout is not one JSON document ({e}):\n{text[:2000]}")
if not isinstance(got, dict):
    sys.exit(f"JSON is not an object: {text[:200]}")

ti = lt.torrent_info(torrent)
fs = ti.files()
raw = lt.bdecode(open(torrent, "rb").read())

def opt_str(key):
    v = raw.get(key)
    return v.decode("utf-8") if isinstance(v, bytes) else None

tiers = {}
for ae in ti.trackers():
    tiers.setdefault(ae.tier, []).append(ae.url)
want = {
    "name": ti.name(),
    "info_hash": str(ti.info_hashes().v1),
    "piece_length": ti.piece_length(),
    "piece_count": ti.num_pieces(),
    "total_size": ti.total_size(),
    "private": bool(ti.priv()),
    "trackers": [tiers[t] for t in sorted(tiers)],
    "files": [{"path": fs.file_path(i), "size": fs.file_size(i)} for i in range(fs.num_files())],
    "comment": opt_str(b"comment"),
    "created_by": opt_str(b"created by"),
    "creation_date": raw.get(b"creation date"),
}
# libtorrent shuffles the URLs inside each tier (BEP 12), so only the order
# of the tiers is significant, not the order within one.
norm = lambda tl: [sorted(t) for t in tl] if isinstance(tl, list) and all(isinstance(t, list) for t in tl) else tl

bad = []
for key, w in want.items():
    if key not in got:
        bad.append(f"  {key}: missing (want {w!r})")
        continue
    g = got[key]
    if key == "trackers":
        g, w = norm(g), norm(w)
    if type(g) is not type(w) or g != w:
        if key == "files" and isinstance(g, list):
            for i in range(max(len(g), len(w))):
                gi = g[i] if i < len(g) else None
                wi = w[i] if i < len(w) else None
                if gi != wi:
                    bad.append(f"  files[{i}]: got {gi!r}, want {wi!r}")
        else:
            bad.append(f"  {key}: got {g!r}, want {w!r}")
if bad:
    print("ptorrent info --json disagrees with libtorrent:")
    print("\n".join(bad))
    sys.exit(1)
EOF
}

check_one() {
    local t=$1 name out err rc hash
    name=$(basename "$t" .torrent)
    out="$E2E_TMP/$name.json"
    err="$E2E_TMP/$name.err"
    rc=0
    run_bounded 30 "$PTORRENT" info --json "$t" >"$out" 2>"$err" || rc=$?
    ((rc == 0)) || { cat "$err" >&2; fail "$name: info --json exited $rc"; }
    check_json "$t" "$out" >&2 || fail "$name: JSON mismatch (output in $out)"

    hash=$(lt_infohash "$t")
    rc=0
    run_bounded 30 "$PTORRENT" info "$t" >"$out.txt" 2>"$err" || rc=$?
    ((rc == 0)) || { cat "$err" >&2; fail "$name: info exited $rc"; }
    grep -qi -- "$hash" "$out.txt" || { cat "$out.txt" >&2; fail "$name: plain info does not show $hash"; }
    log "ok $name ($hash)"
}

make_data
make_fixtures
n=0
for t in "$FIX"/*.torrent; do
    check_one "$t"
    n=$((n + 1))
done
((n == 9)) || fail "expected 9 fixtures, checked $n"
log "all $n fixtures agree with libtorrent"
