#!/usr/bin/env bash
# `make demo`: ptorrent downloads ~64 MiB from a real BitTorrent peer.
#
#   PTORRENT=/abs/path/to/ptorrent scripts/demo.sh
#
# In a temporary directory it makes random data (a few files, one directory
# deep), a torrent of it (mktorrent, 256 KiB pieces), starts opentracker with
# that torrent whitelisted and a python3-libtorrent seeder, all on 127.0.0.1
# with ports the kernel picked; then runs ptorrent in the foreground, so its
# progress shows, and compares what it wrote with the original, byte for
# byte. Everything it started is stopped by PID when it ends, also on Ctrl-C.
#
# Knobs: DEMO_MIB (size, default 64), DEMO_TIMEOUT (seconds for the download,
# default 600), DEMO_KEEP=1 (keep the temporary directory).
set -euo pipefail

if [[ -z "${PTORRENT:-}" || ! -x "${PTORRENT:-}" ]]; then
    echo "demo.sh: set PTORRENT to the ptorrent binary (make demo does)" >&2
    exit 2
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ptorrent-demo.XXXXXX")
export E2E_TMP
# The test helpers give us free ports, opentracker, the seeder and a cleanup
# trap that stops every process we start.
# shellcheck source=tests/e2e/lib.sh
. "$HERE/../tests/e2e/lib.sh"
if [[ "${DEMO_KEEP:-0}" == 1 ]]; then
    echo "demo: files kept in $E2E_TMP" >&2
else
    # shellcheck disable=SC2016 # expanded when the cleanup runs
    on_cleanup 'rm -rf "$E2E_TMP"'
fi

MIB=${DEMO_MIB:-64}
if ! [[ "$MIB" =~ ^[0-9]+$ ]] || ((MIB < 4)); then
    fail "DEMO_MIB must be a whole number >= 4"
fi
DL_TIMEOUT=${DEMO_TIMEOUT:-600}
SEED="$E2E_TMP/seed"
OUT="$E2E_TMP/out"
TORRENT="$E2E_TMP/demo.torrent"

say() {
    printf '\n==> %s\n' "$*"
}

# About MIB MiB in three files of uneven sizes, so pieces straddle files.
make_content() {
    local c="$SEED/demo-data" mib=$MIB
    make_random_file "$c/video.bin" $((mib * 1024 * 1024 * 3 / 4))
    make_random_file "$c/music/track-01.bin" $((mib * 1024 * 1024 / 4 - 1024 * 1024 + 12345))
    make_random_file "$c/docs/readme.bin" $((1024 * 1024 - 12345 + 7))
}

# The download step, on its own so it is easy to swap. Returns ptorrent's
# exit code (124 when DEMO_TIMEOUT ran out).
download() {
    run_waited "$DL_TIMEOUT" "$PTORRENT" download -t "$TORRENT" -o "$OUT"
}

# True when this ptorrent has no `download` command yet: it then answers
# "unknown command" with exit 1.
download_missing() {
    local text rc=0
    text=$("$PTORRENT" download 2>&1) || rc=$?
    ((rc == 1)) && grep -qi 'unknown command' <<<"$text"
}

# compare_trees A B: cmp every file of A with its copy in B, and no file of B
# may be missing from A.
compare_trees() {
    local a=$1 b=$2 f n=0 bad=0
    while IFS= read -r -d '' f; do
        n=$((n + 1))
        cmp -- "$a/$f" "$b/$f" || bad=1
    done < <(cd "$a" && find . -type f -print0)
    while IFS= read -r -d '' f; do
        [[ -f "$a/$f" ]] || { echo "extra file: $f"; bad=1; }
    done < <(cd "$b" && find . -type f -print0)
    echo "compared $n files"
    ((bad == 0 && n > 0))
}

verdict() {
    echo
    echo "demo: $*"
}

show_logs() {
    local f
    for f in "$E2E_TMP"/lt_swarm_seed.log "$E2E_TMP"/opentracker.*.log; do
        [[ -s "$f" ]] || continue
        echo "--- last lines of $(basename "$f"):"
        tail -n 15 "$f"
    done
}

main() {
    need_cmd mktorrent opentracker
    say "Making ${MIB} MiB of random data in $SEED/demo-data"
    make_content
    say "Starting opentracker on 127.0.0.1"
    start_opentracker "$E2E_TMP/tracker"
    say "Making the torrent (mktorrent, 256 KiB pieces) for $ANNOUNCE_URL"
    mktorrent -l 18 -a "$ANNOUNCE_URL" -o "$TORRENT" "$SEED/demo-data" >/dev/null
    local hash
    hash=$(lt_infohash "$TORRENT")
    opentracker_add_hash "$hash"
    echo "info hash $hash"

    if download_missing; then
        say "ptorrent info $TORRENT"
        "$PTORRENT" info "$TORRENT"
        verdict "SKIP - '$PTORRENT download' is not implemented yet; showed the torrent instead"
        return 0
    fi

    say "Starting a python3-libtorrent seeder (scripts/lt_swarm.py)"
    start_lt_seeders "$TORRENT" "$SEED" 1
    say "ptorrent download -t demo.torrent -o $OUT"
    local start=$SECONDS rc=0
    download || rc=$?
    local secs=$((SECONDS - start))
    if ((rc != 0)); then
        show_logs
        verdict "FAIL - ptorrent exited $rc after ${secs}s"
        return 1
    fi
    if ! compare_trees "$SEED/demo-data" "$OUT/demo-data"; then
        verdict "FAIL - the downloaded files differ from the originals"
        return 1
    fi
    verdict "PASS - ${MIB} MiB downloaded in ${secs}s, every file byte-identical (cmp)"
}

main
