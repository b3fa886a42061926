#!/usr/bin/env bash
# `ptorrent info` rejects broken .torrent files cleanly: exit code exactly 2,
# exactly one line on stderr naming the file, no crash. A well-formed torrent
# built the same way is accepted, so the cases differ from it only in their
# fault. Usage errors exit 1; --help and --version exit 0.
# timeout: 120
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need_ptorrent

BAD="$E2E_TMP/bad"
mkdir -p "$BAD"

# Writes $BAD/good.torrent and one file per fault. Each case is the good
# torrent with one thing broken, except where the fault is the whole file.
make_cases() {
    "$PY" - "$BAD" <<'EOF'
import hashlib, os, sys

out = sys.argv[1]

def benc(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(benc(x) for x in v) + b"e"
    if isinstance(v, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, x) for k, x in v.items())
        return b"d" + b"".join(benc(k) + benc(x) for k, x in items) + b"e"
    raise TypeError(v)

PL = 16384
def pieces(n):
    return b"".join(hashlib.sha1(b"piece %d" % i).digest() for i in range(n))

def single(**over):
    info = {"name": "file.bin", "piece length": PL, "length": 3 * PL - 100, "pieces": pieces(3)}
    info.update(over)
    return {"announce": "http://127.0.0.1:9/announce", "info": info}

def multi(files, n=None):
    total = sum(f["length"] for f in files)
    n = n if n is not None else max(1, -(-total // PL))
    return {"announce": "http://127.0.0.1:9/announce",
            "info": {"name": "dir", "piece length": PL, "pieces": pieces(n), "files": files}}

def write(name, data):
    with open(os.path.join(out, name + ".torrent"), "wb") as f:
        f.write(data)

good = benc(single())
write("good", good)
write("good_multi", benc(multi([{"length": 100, "path": ["a", "b.bin"]},
                                {"length": 0, "path": ["empty"]}])))

write("empty_file", b"")
write("not_a_dict", benc(["a", "list", 1]))
write("not_bencode", b"this is not bencode\n")
write("truncated", good[: len(good) // 2])
write("truncated_last_byte", good[:-1])
# "04:name": a string length with a leading zero.
write("leading_zero_length", good.replace(b"4:name8:file.bin", b"04:name8:file.bin"))
write("leading_zero_int", good.replace(b"i16384e", b"i016384e"))
write("pieces_not_multiple_of_20", benc(single(pieces=pieces(3)[:-7])))
write("piece_count_mismatch", benc(single(pieces=pieces(2))))
write("piece_length_zero", benc(single(**{"piece length": 0})))
write("negative_length", benc(single(length=-5)))
write("path_dotdot", benc(multi([{"length": 10, "path": ["..", "x"]}])))
write("path_dotdot_nested", benc(multi([{"length": 10, "path": ["a", "..", "..", "x"]}])))
write("name_absolute", benc(single(name="/etc/x")))
write("name_dotdot", benc(single(name="..")))
write("path_component_slash", benc(multi([{"length": 10, "path": ["a/b", "x"]}])))
write("path_empty_component", benc(multi([{"length": 10, "path": ["a", "", "x"]}])))
write("path_empty_list", benc(multi([{"length": 10, "path": []}])))
write("multi_negative_length", benc(multi([{"length": 100, "path": ["a"]},
                                            {"length": -50, "path": ["b"]}], n=1)))
# 100000 nested lists: unterminated at the top, and closed inside a torrent
# (where only a depth limit can reject it).
deep = 100000
write("deep_nesting", b"l" * deep)
write("deep_nesting_in_dict", b"d1:a" + b"l" * deep + b"e" * deep + good[1:])
# The same key twice in one dictionary.
info_entry = good[good.index(b"4:info"):-1]
write("duplicate_keys", good[:-1] + info_entry + b"e")
write("missing_info", benc({"announce": "http://127.0.0.1:9/announce"}))
write("info_not_a_dict", benc({"announce": "http://127.0.0.1:9/announce", "info": [1, 2]}))
EOF
    mkdir -p "$BAD/a_directory.torrent"
}

# expect_reject FILE: the fault must give exit 2 and one stderr line that
# names the file.
expect_reject() {
    local f=$1 name rc lines
    name=$(basename "$f")
    rc=0
    run_bounded 20 "$PTORRENT" info "$f" >"$E2E_TMP/out" 2>"$E2E_TMP/err" || rc=$?
    ((rc != 124)) || fail "$name: hung (killed after 20 s)"
    ((rc < 128)) || fail "$name: crashed (exit $rc, signal $((rc - 128)))"
    ((rc == 2)) || { cat "$E2E_TMP/err" >&2; fail "$name: exit $rc, want 2"; }
    # awk counts a last line without a newline too.
    lines=$(awk 'END { print NR }' "$E2E_TMP/err")
    ((lines == 1)) || { cat "$E2E_TMP/err" >&2; fail "$name: $lines lines on stderr, want 1"; }
    grep -qF -- "$name" "$E2E_TMP/err" || fail "$name: stderr does not name the file: $(cat "$E2E_TMP/err")"
    # --json must reject the same way.
    rc=0
    run_bounded 20 "$PTORRENT" info --json "$f" >/dev/null 2>"$E2E_TMP/err" || rc=$?
    ((rc == 2)) || fail "$name: info --json exit $rc, want 2"
    log "rejected $name: $(cat "$E2E_TMP/err")"
}

# expect_exit CODE ARGS...: the command line exits with CODE.
expect_exit() {
    local want=$1 rc=0
    shift
    run_bounded 20 "$PTORRENT" "$@" >"$E2E_TMP/out" 2>"$E2E_TMP/err" || rc=$?
    ((rc == want)) || { cat "$E2E_TMP/err" >&2; fail "ptorrent $*: exit $rc, want $want"; }
}

make_cases

# Controls: the good torrents are accepted, with libtorrent's info hash.
for g in good good_multi; do
    rc=0
    run_bounded 20 "$PTORRENT" info --json "$BAD/$g.torrent" >"$E2E_TMP/$g.json" 2>"$E2E_TMP/err" || rc=$?
    ((rc == 0)) || { cat "$E2E_TMP/err" >&2; fail "control $g.torrent rejected (exit $rc)"; }
    grep -q "$(lt_infohash "$BAD/$g.torrent")" "$E2E_TMP/$g.json" || fail "control $g: wrong info hash"
done

n=0
for f in "$BAD"/*.torrent "$BAD/does_not_exist.torrent"; do
    case $(basename "$f") in good.torrent | good_multi.torrent) continue ;; esac
    expect_reject "$f"
    n=$((n + 1))
done
((n == 26)) || fail "expected 26 malformed cases, ran $n"

expect_exit 1
expect_exit 1 info
expect_exit 1 info --json
expect_exit 1 no-such-command
expect_exit 0 --help
expect_exit 0 --version
[[ -s "$E2E_TMP/out" ]] || fail "--version printed nothing on stdout"
log "all $n malformed torrents rejected; usage exits right"
